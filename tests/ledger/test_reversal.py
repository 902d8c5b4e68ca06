"""Fraud reversal: what remains is taken back, what was spent becomes debt, future earnings pay it first."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.errors import AppError
from app.extensions import db
from app.ledger.models import LedgerLot, LedgerReversal, LedgerTransfer
from app.ledger.reversal import outstanding_debt, reverse_credit
from app.ledger.service import (
    Earning,
    account_balances,
    check_invariants,
    hold,
    ledger_entries,
    post_earnings,
    transfer,
    transfer_id_for,
    void_pending,
)
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.ledger.conftest import earning, run_in_threads
from tests.rewards.factories import make_staff

LATER = datetime(2099, 1, 1, tzinfo=UTC)
IN_2025 = datetime(2025, 6, 1, 4, tzinfo=UTC)
IN_2026 = datetime(2026, 6, 1, 4, tzinfo=UTC)


def earn(key: str, citizen_id: int, amount: int, when: datetime | None = None) -> uuid.UUID:
    with time_machine.travel(when or IN_2026, tick=False):
        return post_earnings([earning(key, citizen_id, amount)])[key]


def lots_of(citizen_id: int) -> dict[date, int]:
    return dict(
        db.session.execute(
            select(LedgerLot.expires_on, LedgerLot.remaining).where(LedgerLot.citizen_id == citizen_id)
        ).tuples().all()
    )


def error_code(excinfo: pytest.ExceptionInfo[AppError]) -> tuple[str, int]:
    return excinfo.value.code, excinfo.value.status


# ---- the service ------------------------------------------------------------------------------------


def test_an_unspent_credit_is_taken_back_whole(db_session):
    alice = make_citizen()
    earn("earn:good", alice, 30)
    fraud = earn("earn:fraud", alice, 50)

    result = reverse_credit(fraud, "GPS spoofing", "staff:1")

    assert (result.amount, result.recovered, result.debt, result.citizen_id) == (50, 50, 0, alice)
    assert account_balances(alice).available == 30
    assert outstanding_debt(alice) == 0
    taken = db.session.get(LedgerTransfer, transfer_id_for(f"reverse:{fraud}"))
    assert (taken.kind, taken.amount, taken.citizen_id) == ("reverse", 50, alice)
    assert taken.details == {"reversed_transfer_id": str(fraud), "reason": "GPS spoofing"}
    assert check_invariants() == []


def test_the_reversal_takes_from_the_credits_own_lot_first(db_session):
    alice = make_citizen()
    earn("earn:old", alice, 40, IN_2025)  # lot 2026-12-31, which FIFO would take first
    fraud = earn("earn:fraud", alice, 50, IN_2026)  # lot 2027-12-31

    reverse_credit(fraud, "fraud", "staff:1")

    assert lots_of(alice) == {date(2026, 12, 31): 40, date(2027, 12, 31): 0}
    assert check_invariants() == []


def test_spent_points_become_debt_and_the_balance_never_goes_negative(db_session):
    alice = make_citizen()
    fraud = earn("earn:fraud", alice, 50)
    transfer("spend:1", f"citizen:{alice}", "merchant:1", 35, "spend")
    held = hold("claim:1", alice, "merchant:1", 5, timeout_at=LATER)  # held points are not taken

    result = reverse_credit(fraud, "fraud", "staff:1")

    assert (result.recovered, result.debt) == (10, 40)
    balances = account_balances(alice)
    assert (balances.available, balances.held) == (0, 5)
    assert outstanding_debt(alice) == 40
    debt = db.session.get(LedgerTransfer, transfer_id_for(f"reverse:{fraud}:debt"))
    assert (debt.kind, debt.amount, debt.citizen_id) == ("debt", 40, alice)
    assert check_invariants() == []
    void_pending(held.id, "cancel:1")  # a voided hold returns its points; the debt stays for earnings
    assert (account_balances(alice).available, outstanding_debt(alice)) == (5, 40)
    assert check_invariants() == []


def test_future_earnings_pay_the_debt_first(db_session):
    alice, bob = make_citizen(), make_citizen()
    fraud = earn("earn:fraud", alice, 50)
    transfer("spend:1", f"citizen:{alice}", "merchant:1", 50, "spend")
    reverse_credit(fraud, "fraud", "staff:1")
    assert outstanding_debt(alice) == 50

    with time_machine.travel(IN_2026, tick=False):
        post_earnings([earning("earn:2", alice, 20), earning("earn:3", alice, 10), earning("earn:b", bob, 7)])

    assert (account_balances(alice).available, outstanding_debt(alice)) == (0, 20)
    assert account_balances(bob).available == 7  # no debt: untouched
    assert check_invariants() == []

    with time_machine.travel(IN_2026, tick=False):
        post_earnings([earning("earn:4", alice, 25)])
        post_earnings([earning("earn:4", alice, 25)])  # a rerun repays nothing twice

    assert (account_balances(alice).available, outstanding_debt(alice)) == (5, 0)
    assert lots_of(alice)[date(2027, 12, 31)] == 5
    repayments = [e for e in ledger_entries(alice, cursor=None, limit=50)["items"] if e["kind"] == "repay"]
    assert sorted(e["amount"] for e in repayments) == [-30, -20]
    assert check_invariants() == []

    with time_machine.travel(IN_2026, tick=False):
        post_earnings([earning("earn:5", alice, 8)])
    assert (account_balances(alice).available, outstanding_debt(alice)) == (13, 0)
    assert check_invariants() == []


def test_a_credit_is_reversed_at_most_once(db_session):
    alice = make_citizen()
    fraud = earn("earn:fraud", alice, 50)
    reverse_credit(fraud, "fraud", "staff:1")
    with pytest.raises(AppError) as excinfo:
        reverse_credit(fraud, "fraud again", "staff:2")
    assert error_code(excinfo) == ("already_reversed", 409)
    assert db.session.get(LedgerReversal, fraud).reason == "fraud"
    assert account_balances(alice).available == 0
    assert check_invariants() == []


@pytest.mark.parametrize("what", ["missing", "spend", "hold"])
def test_only_a_posted_credit_to_a_citizen_can_be_reversed(db_session, what):
    alice = make_citizen()
    earn("earn:1", alice, 50)
    target = {
        "missing": lambda: uuid.uuid4(),
        "spend": lambda: transfer("spend:1", f"citizen:{alice}", "merchant:1", 5, "spend").id,
        "hold": lambda: hold("claim:1", alice, "merchant:1", 5, timeout_at=LATER).id,
    }[what]()
    with pytest.raises(AppError) as excinfo:
        reverse_credit(target, "x", "staff:1")
    assert error_code(excinfo) == ("transfer_not_found", 404)  # none of them credited a citizen


def test_a_reversal_is_refused_for_a_resolution_or_a_reversal(db_session):
    alice, bob = make_citizen(), make_citizen()
    earn("earn:1", alice, 50)
    gift = transfer("gift:1", f"citizen:{alice}", f"citizen:{bob}", 5, "gift")  # credits bob, kind "gift"
    with pytest.raises(AppError) as excinfo:
        reverse_credit(gift.id, "x", "staff:1")
    assert error_code(excinfo) == ("not_reversible", 409)


def test_a_reversal_is_audited_without_the_free_text(db_session):
    alice = make_citizen()
    fraud = earn("earn:fraud", alice, 50)
    reverse_credit(fraud, "call from 138-0000-0000", "staff:7")
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "ledger.credit_reversed")).one()
    assert (entry.actor_type, entry.actor_id, entry.object_id) == ("staff", "7", str(fraud))
    assert entry.details == {"citizen_id": alice, "amount": 50, "recovered": 50, "debt": 0}


def test_concurrent_reversals_of_one_credit_reverse_it_once(app, committed):
    alice = make_citizen()
    fraud = earn("earn:fraud", alice, 50)
    transfer("spend:1", f"citizen:{alice}", "merchant:1", 20, "spend")
    db.session.commit()

    results = run_in_threads(app, 8, lambda i: reverse_credit(fraud, f"attempt {i}", f"staff:{i + 1}"))

    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1 and (winners[0].recovered, winners[0].debt) == (30, 20)
    assert {r.code for r in results if isinstance(r, Exception)} == {"already_reversed"}
    db.session.rollback()
    assert (account_balances(alice).available, outstanding_debt(alice)) == (0, 20)
    assert check_invariants() == []


def test_earnings_and_a_reversal_at_once_keep_the_debt_exact(app, committed):
    """A batch paying debt and a reversal creating it lock the citizen first: neither reads a stale debt."""
    alice = make_citizen()
    frauds = [earn(f"earn:fraud:{i}", alice, 10) for i in range(4)]
    transfer("spend:1", f"citizen:{alice}", "merchant:1", 40, "spend")
    db.session.commit()

    def work(i: int) -> object:
        if i < 4:
            return reverse_credit(frauds[i], "fraud", "staff:1")
        with time_machine.travel(IN_2026, tick=False):
            return post_earnings([earning(f"earn:later:{i}", alice, 3)])

    results = run_in_threads(app, 12, work)

    assert [r for r in results if isinstance(r, Exception)] == []
    db.session.rollback()
    balances = account_balances(alice)
    # 40 of debt in all, 8 x 3 = 24 earned later: whatever the order, debt + available = 40 - 24 + ... exact:
    assert outstanding_debt(alice) - balances.available == 40 - 24
    assert check_invariants() == []


# ---- the API ----------------------------------------------------------------------------------------


def post_reversal(client, headers, body, key="rev-1"):
    return client.post("/api/v1/staff/reversals", json=body, headers={**headers, "Idempotency-Key": key})


def test_an_operator_reverses_a_credit_by_event_id(client, db_session):
    alice = make_citizen()
    with time_machine.travel(IN_2026, tick=False):
        post_earnings([Earning("earn:event:77", alice, "metro_trip", 50, 77, {})])
    transfer("spend:1", f"citizen:{alice}", "merchant:1", 45, "spend")
    operator = make_staff("operator")
    headers = bearer_as(f"staff:{operator}", "operator")
    db_session.commit()  # with the signing key the token needs: an error response rolls back to here

    response = post_reversal(client, headers, {"event_id": 77, "reason": "duplicate trip"})

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["amount"], body["recovered"], body["debt"], body["actor"]) == (50, 5, 45, f"staff:{operator}")
    assert body["transfer_id"] == str(transfer_id_for("earn:event:77"))
    replay = post_reversal(client, headers, {"event_id": 77, "reason": "duplicate trip"})
    assert (replay.status_code, replay.get_json(), replay.headers.get("Idempotent-Replayed")) == (201, body, "true")
    again = post_reversal(client, headers, {"event_id": 77, "reason": "duplicate trip"}, key="rev-2")
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "already_reversed")
    changed = post_reversal(client, headers, {"event_id": 77, "reason": "other"})
    assert (changed.status_code, changed.get_json()["error"]["code"]) == (422, "idempotency_key_reused")

    account = client.get("/api/v1/me/account", headers=bearer_for(alice)).get_json()
    assert (account["points"]["available"], account["points"]["debt"]) == (0, 45)
    assert check_invariants() == []


def test_a_reversal_by_transfer_id_and_its_errors(client, db_session):
    alice = make_citizen()
    fraud = earn("earn:fraud", alice, 50)
    operator = make_staff("operator")
    headers = bearer_as(f"staff:{operator}", "operator")
    db_session.commit()  # with the signing key the token needs: an error response rolls back to here

    missing = post_reversal(client, headers, {"transfer_id": str(uuid.uuid4()), "reason": "x"}, key="a")
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "transfer_not_found")
    for key, body in (
        ("b", {"reason": "x"}),
        ("c", {"event_id": 1, "transfer_id": str(fraud), "reason": "x"}),
        ("d", {"transfer_id": str(fraud), "reason": ""}),
        ("e", {"transfer_id": str(fraud), "reason": "x", "extra": 1}),
        ("f", {"event_id": 0, "reason": "x"}),
    ):
        response = post_reversal(client, headers, body, key=key)
        assert response.status_code in (400, 422), (body, response.status_code, response.get_json())
    ok = post_reversal(client, headers, {"transfer_id": str(fraud), "reason": "x"}, key="g")
    assert (ok.status_code, ok.get_json()["recovered"]) == (201, 50)


def test_only_an_operator_or_admin_may_reverse(client, db_session):
    alice = make_citizen()
    fraud = earn("earn:fraud", alice, 50)
    reviewer, admin = make_staff("reviewer"), make_staff("admin")
    suspended = make_staff("operator", status="suspended")
    db_session.commit()
    body = {"transfer_id": str(fraud), "reason": "x"}

    assert post_reversal(client, {}, body).status_code == 401
    assert post_reversal(client, bearer_for(alice), body).status_code == 403
    assert post_reversal(client, bearer_as(f"staff:{reviewer}", "reviewer"), body).status_code == 403
    assert post_reversal(client, bearer_as(f"staff:{suspended}", "operator"), body).status_code == 401
    assert post_reversal(client, bearer_as(f"staff:{admin}", "admin"), body).status_code == 201
