"""Expiry: due lots move to the expiry account once, held points keep their allocation, 30-day notices."""
from __future__ import annotations

from datetime import UTC, date, datetime

import time_machine
from sqlalchemy import func, select

from app.extensions import db
from app.jobs import expire_points
from app.ledger.expiry import EXPIRY_ACCOUNT, expire_due_lots, notify_expiring_lots
from app.ledger.models import LedgerAccount, LedgerLot, LedgerTransfer
from app.ledger.service import (
    account_balances,
    check_invariants,
    hold,
    ledger_entries,
    post_earnings,
    post_pending,
    transfer,
    transfer_id_for,
    void_pending,
)
from app.notifications.models import Notification
from app.scheduler import recurring_jobs
from tests.conftest import bearer_for, make_citizen
from tests.ledger.conftest import earning, run_in_threads

LATER = datetime(2099, 1, 1, tzinfo=UTC)
IN_2025 = datetime(2025, 6, 1, 4, tzinfo=UTC)  # lots expiring 2026-12-31
IN_2026 = datetime(2026, 6, 1, 4, tzinfo=UTC)  # lots expiring 2027-12-31
NEW_YEAR_2027 = date(2027, 1, 1)


def earn_at(when: datetime, key: str, citizen_id: int, amount: int) -> None:
    with time_machine.travel(when, tick=False):
        post_earnings([earning(key, citizen_id, amount)])


def lot(citizen_id: int, expires_on: date) -> LedgerLot:
    return db.session.scalars(
        select(LedgerLot)
        .where(LedgerLot.citizen_id == citizen_id, LedgerLot.expires_on == expires_on)
        .execution_options(populate_existing=True)
    ).one()


def expiry_account_credits() -> int:
    return db.session.scalar(select(LedgerAccount.credits_posted).where(LedgerAccount.code == EXPIRY_ACCOUNT)) or 0


def transfers_of_kind(kind: str) -> int:
    return db.session.scalar(select(func.count()).select_from(LedgerTransfer).where(LedgerTransfer.kind == kind))


def test_nothing_expires_before_the_last_day_has_passed(db_session):
    alice = make_citizen()
    earn_at(IN_2025, "earn:1", alice, 40)
    assert expire_due_lots(date(2026, 12, 31)).lots == 0  # the last day still counts
    assert account_balances(alice).available == 40


def test_due_lots_expire_once_and_a_second_run_expires_nothing_more(db_session):
    alice, bob = make_citizen(), make_citizen()
    earn_at(IN_2025, "earn:old:a", alice, 40)
    earn_at(IN_2026, "earn:new:a", alice, 25)
    earn_at(IN_2025, "earn:old:b", bob, 7)

    run = expire_due_lots(NEW_YEAR_2027)

    assert (run.lots, run.points, run.skipped) == (2, 47, 0)
    assert account_balances(alice).available == 25 and account_balances(bob).available == 0
    assert account_balances(alice).spent_total == 40
    assert expiry_account_credits() == 47
    old = lot(alice, date(2026, 12, 31))
    assert (old.remaining, old.expired) == (0, 40)
    expired = db.session.get(LedgerTransfer, transfer_id_for(f"expire:lot:{old.id}:0"))
    assert (expired.kind, expired.amount, expired.citizen_id) == ("expire", 40, alice)
    assert expired.details == {"reason": "expired", "expires_on": "2026-12-31"}
    assert check_invariants() == []

    again = expire_due_lots(NEW_YEAR_2027)

    assert (again.lots, again.points) == (0, 0)
    assert transfers_of_kind("expire") == 2
    assert expiry_account_credits() == 47
    assert check_invariants() == []


def test_the_citizen_sees_the_expiry_in_the_ledger(db_session):
    alice = make_citizen()
    earn_at(IN_2025, "earn:1", alice, 40)
    expire_due_lots(NEW_YEAR_2027)
    entries = ledger_entries(alice, cursor=None, limit=10)["items"]
    assert [(e["kind"], e["amount"], e["direction"]) for e in entries][0] == ("expire", -40, "out")


def test_held_points_keep_their_allocation_and_expire_if_the_hold_is_voided(db_session):
    alice = make_citizen()
    earn_at(IN_2025, "earn:1", alice, 40)
    held = hold("claim:1", alice, "merchant:1", 15, timeout_at=LATER)

    first = expire_due_lots(NEW_YEAR_2027)

    assert (first.lots, first.points) == (1, 25)  # only the free part
    assert (account_balances(alice).available, account_balances(alice).held) == (0, 15)
    assert check_invariants() == []

    void_pending(held.id, "cancel:1")  # the points return to their lot, already past its day
    assert account_balances(alice).available == 15
    second = expire_due_lots(NEW_YEAR_2027)

    assert (second.lots, second.points) == (1, 15)
    old = lot(alice, date(2026, 12, 31))
    assert (old.remaining, old.held, old.expired) == (0, 0, 40)
    assert db.session.get(LedgerTransfer, transfer_id_for(f"expire:lot:{old.id}:25")).amount == 15
    assert account_balances(alice).available == 0
    assert check_invariants() == []


def test_a_hold_over_an_expired_lot_can_still_be_redeemed(db_session):
    alice = make_citizen()
    earn_at(IN_2025, "earn:1", alice, 40)
    held = hold("claim:1", alice, "merchant:1", 15, timeout_at=LATER)
    expire_due_lots(NEW_YEAR_2027)

    post_pending(held.id, "redeem:1")

    assert expire_due_lots(NEW_YEAR_2027).lots == 0
    assert account_balances(alice).spent_total == 40
    assert check_invariants() == []


def test_the_expiry_job_runs_in_rounds_and_commits(app, committed):
    citizens = [make_citizen() for _ in range(5)]
    with time_machine.travel(IN_2025, tick=False):
        post_earnings([earning(f"earn:{c}", c, 10) for c in citizens])
    db.session.commit()

    with time_machine.travel(datetime(2027, 1, 1, 4, tzinfo=UTC), tick=False):
        first = expire_points()
        second = expire_points()

    assert first == {"notified": 0, "lots": 5, "points": 50}
    assert second == {"notified": 0, "lots": 0, "points": 0}
    db.session.rollback()
    assert {account_balances(c).available for c in citizens} == {0}
    assert check_invariants() == []


def test_two_expiry_runs_at_once_expire_each_lot_once(app, committed):
    citizens = [make_citizen() for _ in range(40)]
    with time_machine.travel(IN_2025, tick=False):
        post_earnings([earning(f"earn:{c}", c, 1 + i) for i, c in enumerate(citizens)])
    db.session.commit()

    results = run_in_threads(app, 4, lambda i: expire_due_lots(NEW_YEAR_2027, limit=15))

    assert [r for r in results if isinstance(r, Exception)] == []
    db.session.rollback()
    expired_lots = sum(r.lots for r in results)
    assert expired_lots <= 40 and sum(r.points for r in results) == sum(
        1 + i for i, c in enumerate(citizens) if account_balances(c).available == 0
    )
    while expire_due_lots(NEW_YEAR_2027).lots:  # whatever was left over
        pass
    db.session.commit()
    assert {account_balances(c).available for c in citizens} == {0}
    assert transfers_of_kind("expire") == 40
    assert check_invariants() == []


# ---- notices and expiring_soon ------------------------------------------------------------------


def test_citizens_are_notified_once_per_lot_thirty_days_before(db_session):
    alice, bob = make_citizen(), make_citizen()
    earn_at(IN_2025, "earn:a", alice, 40)  # expires 2026-12-31
    earn_at(IN_2026, "earn:b", bob, 9)  # expires 2027-12-31: not yet

    assert notify_expiring_lots(date(2026, 11, 30)) == 0  # 31 days before
    assert notify_expiring_lots(date(2026, 12, 1)) == 1
    assert notify_expiring_lots(date(2026, 12, 2)) == 0  # once per lot

    notice = db.session.scalars(select(Notification).where(Notification.citizen_id == alice)).one()
    old = lot(alice, date(2026, 12, 31))
    assert (notice.kind, notice.dedupe_key) == ("points_expiring", f"points_expiring:lot:{old.id}")
    assert notice.payload == {"points": 40, "expires_on": "2026-12-31", "lot_id": old.id}
    assert db.session.scalar(select(func.count()).where(Notification.citizen_id == bob)) == 0


def test_a_lot_without_free_points_is_not_announced(db_session):
    alice = make_citizen()
    earn_at(IN_2025, "earn:a", alice, 40)
    hold("claim:1", alice, "merchant:1", 40, timeout_at=LATER)
    assert notify_expiring_lots(date(2026, 12, 1)) == 0


def test_the_account_shows_what_expires_within_thirty_days(client, db_session):
    alice = make_citizen()
    earn_at(IN_2025, "earn:a", alice, 40)
    earn_at(IN_2026, "earn:b", alice, 9)
    hold("claim:1", alice, "merchant:1", 10, timeout_at=LATER)  # taken from the lot expiring first
    db_session.commit()

    with time_machine.travel(datetime(2026, 11, 20, 4, tzinfo=UTC), tick=False):
        early = client.get("/api/v1/me/account", headers=bearer_for(alice)).get_json()
    with time_machine.travel(datetime(2026, 12, 10, 4, tzinfo=UTC), tick=False):
        soon = client.get("/api/v1/me/account", headers=bearer_for(alice)).get_json()

    assert early["expiring_soon"] == {"points": 0, "expires_on": None}
    assert soon["expiring_soon"] == {"points": 30, "expires_on": "2026-12-31"}
    assert soon["points"]["available"] == 39


def test_the_job_notifies_once_and_is_a_recurring_job(app, committed):
    alice = make_citizen()
    earn_at(IN_2025, "earn:a", alice, 40)
    db.session.commit()

    with time_machine.travel(datetime(2026, 12, 5, 4, tzinfo=UTC), tick=False):
        assert expire_points() == {"notified": 1, "lots": 0, "points": 0}
        assert expire_points() == {"notified": 0, "lots": 0, "points": 0}

    assert any(job.func is expire_points and job.interval == 3600 for job in recurring_jobs(app))


def test_expiry_alongside_spends_holds_and_voids_neither_deadlocks_nor_breaks_the_lots(app, committed):
    """The job takes lots and accounts with SKIP LOCKED; spenders lock the account, then lots: no cycle."""
    citizens = [make_citizen() for _ in range(6)]
    with time_machine.travel(IN_2025, tick=False):
        post_earnings([earning(f"earn:old:{c}", c, 100) for c in citizens])
    with time_machine.travel(IN_2026, tick=False):
        post_earnings([earning(f"earn:new:{c}", c, 100) for c in citizens])
    holds = {c: hold(f"claim:{c}", c, "merchant:1", 30, timeout_at=LATER).id for c in citizens}
    db.session.commit()

    def work(i: int) -> object:
        if i % 3 == 0:
            return expire_due_lots(NEW_YEAR_2027, limit=3)
        c = citizens[i % len(citizens)]
        if i % 3 == 1:
            return void_pending(holds[c], f"cancel:{c}").id
        return transfer(f"spend:{i}", f"citizen:{c}", "merchant:1", 20, "spend").id

    results = run_in_threads(app, 12, work)

    assert [r for r in results if isinstance(r, Exception) and getattr(r, "code", "") != "hold_already_resolved"] == []
    while expire_due_lots(NEW_YEAR_2027).lots:
        pass
    db.session.commit()
    assert check_invariants() == []
    for c in citizens:  # every 2025 point is gone, spent or expired; the 2026 lot is intact or spent
        assert lot(c, date(2026, 12, 31)).remaining == 0
