"""Point lots, as a specification: one lot per (citizen, expiry day), spent first-to-expire first."""
from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import select, text

from app.errors import AppError
from app.extensions import db
from app.ledger.lots import expiry_for
from app.ledger.models import LedgerHoldAllocation, LedgerLot
from app.ledger.service import (
    account_balances,
    check_invariants,
    hold,
    post_earnings,
    post_pending,
    transfer,
    void_pending,
)
from tests.conftest import make_citizen
from tests.ledger.conftest import earning

LATER = datetime(2099, 1, 1, tzinfo=UTC)
# 2025-06-01 and 2026-06-01, noon in Shanghai
IN_2025 = datetime(2025, 6, 1, 4, tzinfo=UTC)
IN_2026 = datetime(2026, 6, 1, 4, tzinfo=UTC)


def lots_of(citizen_id: int) -> list[tuple[date, int, int, int]]:
    """(expires_on, remaining, held, expired) of each lot, first to expire first."""
    rows = db.session.execute(
        select(LedgerLot.expires_on, LedgerLot.remaining, LedgerLot.held, LedgerLot.expired)
        .where(LedgerLot.citizen_id == citizen_id)
        .order_by(LedgerLot.expires_on)
    ).all()
    return [tuple(row) for row in rows]


def earn_at(when: datetime, key: str, citizen_id: int, amount: int) -> None:
    with time_machine.travel(when, tick=False):
        post_earnings([earning(key, citizen_id, amount)])


def test_points_expire_at_the_end_of_the_year_after_they_were_earned(app):
    with app.app_context():
        assert expiry_for(date(2026, 1, 1)) == date(2027, 12, 31)
        assert expiry_for(date(2026, 12, 31)) == date(2027, 12, 31)
        app.config["POINTS_EXPIRE_AFTER_YEARS"] = 2
        try:
            assert expiry_for(date(2026, 3, 5)) == date(2028, 12, 31)
        finally:
            app.config["POINTS_EXPIRE_AFTER_YEARS"] = 1


def test_the_earning_day_is_the_shanghai_day(db_session):
    alice = make_citizen()
    earn_at(datetime(2025, 12, 31, 16, 30, tzinfo=UTC), "earn:1", alice, 10)  # 00:30 on 1 Jan 2026 in Shanghai
    assert lots_of(alice) == [(date(2027, 12, 31), 10, 0, 0)]


def test_a_batch_adds_to_one_lot_per_citizen_and_expiry_day(db_session):
    alice, bob = make_citizen(), make_citizen()
    with time_machine.travel(IN_2026, tick=False):
        post_earnings([earning(f"earn:{i}", (alice, bob)[i % 2], 1 + i) for i in range(10)])
        post_earnings([earning("earn:late", alice, 100)])

    assert lots_of(alice) == [(date(2027, 12, 31), 1 + 3 + 5 + 7 + 9 + 100, 0, 0)]
    assert lots_of(bob) == [(date(2027, 12, 31), 2 + 4 + 6 + 8 + 10, 0, 0)]
    assert check_invariants() == []


def test_a_rerun_adds_nothing_to_the_lots(db_session):
    alice = make_citizen()
    batch = [earning(f"earn:{i}", alice, 10) for i in range(3)]
    post_earnings(batch)
    before = lots_of(alice)
    post_earnings(batch)
    assert lots_of(alice) == before
    assert check_invariants() == []


def test_spending_takes_the_lot_that_expires_first(db_session):
    alice = make_citizen()
    earn_at(IN_2026, "earn:new", alice, 100)  # earned later, but posted first
    earn_at(IN_2025, "earn:old", alice, 50)

    transfer("spend:1", f"citizen:{alice}", "merchant:1", 70, "spend")

    assert lots_of(alice) == [(date(2026, 12, 31), 0, 0, 0), (date(2027, 12, 31), 80, 0, 0)]
    assert account_balances(alice).available == 80
    assert check_invariants() == []


def test_a_hold_allocates_fifo_and_a_void_gives_the_same_lots_back(db_session):
    alice = make_citizen()
    earn_at(IN_2025, "earn:old", alice, 30)
    earn_at(IN_2026, "earn:new", alice, 100)

    held = hold("claim:1", alice, "merchant:1", 50, timeout_at=LATER)

    assert lots_of(alice) == [(date(2026, 12, 31), 0, 30, 0), (date(2027, 12, 31), 80, 20, 0)]
    allocations = db.session.execute(
        select(LedgerLot.expires_on, LedgerHoldAllocation.amount)
        .join(LedgerLot, LedgerLot.id == LedgerHoldAllocation.lot_id)
        .where(LedgerHoldAllocation.hold_id == held.id)
        .order_by(LedgerLot.expires_on)
    ).all()
    assert [tuple(a) for a in allocations] == [(date(2026, 12, 31), 30), (date(2027, 12, 31), 20)]
    assert check_invariants() == []

    # a spend in between takes from the newer lot: the held points are spoken for
    transfer("spend:1", f"citizen:{alice}", "merchant:1", 10, "spend")
    void_pending(held.id, "cancel:1")

    assert lots_of(alice) == [(date(2026, 12, 31), 30, 0, 0), (date(2027, 12, 31), 90, 0, 0)]
    assert check_invariants() == []


def test_posting_a_hold_consumes_its_allocation(db_session):
    alice = make_citizen()
    earn_at(IN_2025, "earn:old", alice, 30)
    earn_at(IN_2026, "earn:new", alice, 100)
    held = hold("claim:1", alice, "merchant:1", 50, timeout_at=LATER)

    post_pending(held.id, "redeem:1")
    post_pending(held.id, "redeem:1")  # a replay changes nothing

    assert lots_of(alice) == [(date(2026, 12, 31), 0, 0, 0), (date(2027, 12, 31), 80, 0, 0)]
    assert account_balances(alice).spent_total == 50
    assert check_invariants() == []


def test_a_refused_spend_leaves_the_lots_alone(db_session):
    alice = make_citizen()
    post_earnings([earning("earn:1", alice, 20)])
    before = lots_of(alice)
    for attempt in (
        lambda: transfer("spend:1", f"citizen:{alice}", "merchant:1", 21, "spend"),
        lambda: hold("claim:1", alice, "merchant:1", 21, timeout_at=LATER),
    ):
        with pytest.raises(AppError) as excinfo:
            attempt()
        assert excinfo.value.code == "insufficient_points"
    assert lots_of(alice) == before
    assert check_invariants() == []


def test_a_credit_by_transfer_forms_a_lot_too(db_session):
    alice, bob = make_citizen(), make_citizen()
    with time_machine.travel(IN_2026, tick=False):
        transfer("adjust:1", "adjustment:ops", f"citizen:{alice}", 15, "adjust")
        transfer("gift:1", f"citizen:{alice}", f"citizen:{bob}", 5, "gift")
    assert lots_of(alice) == [(date(2027, 12, 31), 10, 0, 0)]
    assert lots_of(bob) == [(date(2027, 12, 31), 5, 0, 0)]
    assert check_invariants() == []


def test_a_hold_towards_a_citizen_credits_their_lot_when_posted(db_session):
    alice, bob = make_citizen(), make_citizen()
    post_earnings([earning("earn:1", alice, 20)])
    held = hold("claim:1", alice, f"citizen:{bob}", 8, timeout_at=LATER)
    assert lots_of(bob) == []
    post_pending(held.id, "redeem:1")
    assert [lot[1] for lot in lots_of(bob)] == [8]
    assert check_invariants() == []


# ---- the invariant itself -------------------------------------------------------------------------


def test_check_invariants_finds_lots_out_of_step_with_the_balance(db_session):
    alice = make_citizen()
    post_earnings([earning("earn:1", alice, 20)])
    db.session.execute(text("UPDATE ledger_lots SET remaining = remaining - 1 WHERE citizen_id = :c"), {"c": alice})
    problems = check_invariants()
    assert any("lots do not match" in p and f"citizen {alice}" in p for p in problems)


def test_check_invariants_finds_a_lot_held_without_a_hold(db_session):
    alice = make_citizen()
    post_earnings([earning("earn:1", alice, 20)])
    db.session.execute(
        text("UPDATE ledger_lots SET remaining = remaining - 5, held = held + 5 WHERE citizen_id = :c"), {"c": alice}
    )
    problems = check_invariants()
    assert any("open holds' allocations" in p for p in problems)
    assert any("lots do not match" in p for p in problems)


def test_check_invariants_finds_a_hold_without_its_allocation(db_session):
    alice = make_citizen()
    post_earnings([earning("earn:1", alice, 20)])
    held = hold("claim:1", alice, "merchant:1", 5, timeout_at=LATER)
    db.session.execute(text("DELETE FROM ledger_hold_allocations WHERE hold_id = :h"), {"h": held.id})
    problems = check_invariants()
    assert any("do not add up to the hold" in p for p in problems)


# ---- a seeded random sequence -----------------------------------------------------------------------


def test_lots_and_balances_agree_after_a_random_sequence(db_session):
    """Earn (in two years), spend, hold, post, void in a seeded random order; the invariants hold throughout
    and spending always empties the lot that expires first before touching a later one."""
    rng = random.Random(20261127)
    citizens = [make_citizen() for _ in range(3)]
    open_holds: list = []
    for step in range(120):
        c = rng.choice(citizens)
        action = rng.random()
        if action < 0.35:
            earn_at(rng.choice((IN_2025, IN_2026)), f"earn:{step}", c, rng.randint(1, 40))
        elif action < 0.6:
            before = lots_of(c)
            try:
                transfer(f"spend:{step}", f"citizen:{c}", "merchant:1", rng.randint(1, 50), "spend")
            except AppError as exc:
                assert exc.code == "insufficient_points"
            assert_first_to_expire_went_first(before, lots_of(c))
        elif action < 0.8:
            before = lots_of(c)
            try:
                open_holds.append(hold(f"claim:{step}", c, "merchant:1", rng.randint(1, 30), timeout_at=LATER).id)
            except AppError as exc:
                assert exc.code == "insufficient_points"
            assert_first_to_expire_went_first(before, lots_of(c))
        elif open_holds:
            hold_id = open_holds.pop(rng.randrange(len(open_holds)))
            (post_pending if rng.random() < 0.5 else void_pending)(hold_id, f"resolve:{step}")
        if step % 10 == 0:
            assert check_invariants() == []
    assert check_invariants() == []


def assert_first_to_expire_went_first(before: list, after: list) -> None:
    """A lot is only drawn on when every lot expiring before it has no free points left."""
    assert [lot[0] for lot in before] == [lot[0] for lot in after]
    drawn = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a[1] < b[1]]
    if drawn:
        assert all(lot[1] == 0 for lot in after[: drawn[-1]])
