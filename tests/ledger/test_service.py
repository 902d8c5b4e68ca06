"""The ledger service, as a specification: earnings in bulk, transfers, holds, balances, invariants."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

import app.ledger.service as ledger
from app.errors import AppError
from app.extensions import db
from app.ledger.models import LedgerAccount, LedgerExplanation, LedgerTransfer
from app.ledger.service import (
    Balances,
    Earning,
    account_balances,
    check_invariants,
    hold,
    ledger_entries,
    pending_credits,
    post_earnings,
    post_pending,
    transfer,
    transfer_id_for,
    void_pending,
)
from tests.conftest import make_citizen
from tests.ledger.conftest import earning

LATER = datetime(2099, 1, 1, tzinfo=UTC)


def balance_of(code: str) -> tuple[int, int, int, int]:
    """(debits posted, credits posted, debits pending, credits pending); pending credits are derived
    from open holds (a hold never writes the credit side's row, which stays at 0)."""
    account = db.session.execute(
        select(
            LedgerAccount.debits_posted, LedgerAccount.credits_posted,
            LedgerAccount.debits_pending, LedgerAccount.credits_pending,
        ).where(LedgerAccount.code == code)
    ).one()
    assert account.credits_pending == 0
    return (account.debits_posted, account.credits_posted, account.debits_pending, pending_credits(code))


def transfer_count() -> int:
    return db.session.scalar(select(func.count()).select_from(LedgerTransfer))


def rows_updated_in_this_transaction(table: str) -> int:
    return db.session.scalar(
        text("SELECT coalesce(n_tup_upd, 0) FROM pg_stat_xact_user_tables WHERE relname = :t"), {"t": table}
    )


def funded(citizen_id: int, points: int) -> None:
    post_earnings([earning(f"fund:{citizen_id}:{points}", citizen_id, points)])


def error_code(excinfo: pytest.ExceptionInfo[AppError]) -> tuple[str, int]:
    return excinfo.value.code, excinfo.value.status


# ---- identifiers -------------------------------------------------------------------------------


def test_transfer_id_is_uuid5_of_the_key():
    assert transfer_id_for("earn:event:1") == uuid.uuid5(ledger.LEDGER_NAMESPACE, "earn:event:1")
    assert transfer_id_for("earn:event:1") == transfer_id_for("earn:event:1")
    assert transfer_id_for("earn:event:1") != transfer_id_for("earn:event:2")


# ---- post_earnings ------------------------------------------------------------------------------


def test_post_earnings_credits_citizens_from_their_scenario_pools(db_session):
    alice, bob = make_citizen(), make_citizen()
    ids = post_earnings(
        [
            earning("earn:event:1", alice, 78, "metro_trip", formula="distance_km * 78.4"),
            earning("earn:event:2", alice, 93, "bike_share"),
            earning("earn:event:3", bob, 212, "metro_trip"),
        ]
    )

    assert ids == {k: transfer_id_for(k) for k in ("earn:event:1", "earn:event:2", "earn:event:3")}
    assert account_balances(alice) == Balances(available=171, held=0, earned_total=171, spent_total=0)
    assert account_balances(bob).available == 212
    assert balance_of("issuance:metro_trip") == (290, 0, 0, 0)
    assert balance_of("issuance:bike_share") == (93, 0, 0, 0)
    first = db.session.get(LedgerTransfer, ids["earn:event:1"])
    assert (first.kind, first.citizen_id, first.amount, first.pending) == ("earn", alice, 78, False)
    assert first.details == {"scenario": "metro_trip", "formula": "distance_km * 78.4"}
    assert check_invariants() == []


def test_post_earnings_stores_the_event_id(db_session):
    alice = make_citizen()
    ids = post_earnings([Earning("earn:event:42", alice, "metro_trip", 5, 42, {})])
    assert db.session.get(LedgerTransfer, ids["earn:event:42"]).event_id == 42


def test_a_shared_explanation_is_stored_once_and_shown_with_each_entry(db_session):
    alice, bob = make_citizen(), make_citizen()
    shared = {"scenario_code": "metro_trip", "formula": "distance_km * net_g_per_km", "parameters": {"net": "78.4"}}
    ids = post_earnings([
        Earning("earn:event:1", alice, "metro_trip", 78, 1, {"activity": {"distance_km": "1"}}, shared),
        Earning("earn:event:2", bob, "metro_trip", 156, 2, {"activity": {"distance_km": "2"}}, shared),
    ])
    post_earnings([Earning("earn:event:3", alice, "metro_trip", 78, 3, {"activity": {"distance_km": "1"}},
                           dict(shared))])  # the same content again, in another batch

    assert db.session.scalar(select(func.count()).select_from(LedgerExplanation)) == 1
    assert ledger.transfer_explanation(ids["earn:event:2"]) == {**shared, "activity": {"distance_km": "2"}}
    entries = ledger_entries(alice, cursor=None, limit=10)["items"]
    assert [e["explanation"] for e in entries] == [{**shared, "activity": {"distance_km": "1"}}] * 2
    assert check_invariants() == []


def test_rerunning_a_batch_changes_nothing(db_session):
    citizens = [make_citizen() for _ in range(3)]
    batch = [earning(f"earn:event:{i}", citizens[i % 3], 10 + i) for i in range(30)]
    first = post_earnings(batch)
    before = (transfer_count(), [account_balances(c) for c in citizens], balance_of("issuance:metro_trip"))

    again = post_earnings(batch)
    overlapping = post_earnings(batch[10:] + [earning("earn:event:new", citizens[0], 1)])

    assert again == first
    assert overlapping["earn:event:10"] == first["earn:event:10"]
    assert transfer_count() == before[0] + 1
    assert account_balances(citizens[0]).available == before[1][0].available + 1
    assert [account_balances(c) for c in citizens[1:]] == before[1][1:]
    assert balance_of("issuance:metro_trip")[0] == before[2][0] + 1
    assert check_invariants() == []


def test_each_account_is_updated_once_per_batch(db_session):
    """DESIGN: pools take the batch's total in one update, never one update per event."""
    citizens = [make_citizen() for _ in range(10)]
    batch = [
        earning(f"earn:event:{i}", citizens[i % 10], 1 + i % 7, ("metro_trip", "bike_share")[i % 2])
        for i in range(200)
    ]
    updated_before = rows_updated_in_this_transaction("ledger_accounts")

    post_earnings(batch)

    # 10 citizens + 2 pools, each row updated exactly once
    assert rows_updated_in_this_transaction("ledger_accounts") - updated_before == 12
    metro_total = sum(e.amount for e in batch if e.scenario_code == "metro_trip")
    bike_total = sum(e.amount for e in batch if e.scenario_code == "bike_share")
    assert balance_of("issuance:metro_trip") == (metro_total, 0, 0, 0)
    assert balance_of("issuance:bike_share") == (bike_total, 0, 0, 0)


def test_a_rerun_updates_no_balance_at_all(db_session):
    alice = make_citizen()
    batch = [earning(f"earn:event:{i}", alice, 3) for i in range(5)]
    post_earnings(batch)
    updated_before = rows_updated_in_this_transaction("ledger_accounts")
    post_earnings(batch)
    assert rows_updated_in_this_transaction("ledger_accounts") == updated_before


def test_a_key_twice_in_one_batch_is_credited_once(db_session):
    alice = make_citizen()
    same = earning("earn:event:7", alice, 50)
    assert post_earnings([same, same]) == {"earn:event:7": transfer_id_for("earn:event:7")}
    assert account_balances(alice).available == 50


def test_a_key_twice_with_different_content_is_a_caller_bug(db_session):
    alice = make_citizen()
    with pytest.raises(ValueError, match="twice"):
        post_earnings([earning("earn:event:7", alice, 50), earning("earn:event:7", alice, 51)])


@pytest.mark.parametrize("amount", [0, -5])
def test_earnings_must_be_positive(db_session, amount):
    alice = make_citizen()
    with pytest.raises(ValueError, match="positive"):
        post_earnings([earning("earn:event:1", alice, amount)])


def test_an_empty_batch_does_nothing(db_session):
    assert post_earnings([]) == {}


# ---- transfer -----------------------------------------------------------------------------------


def test_transfer_moves_points_and_records_the_request(db_session):
    alice = make_citizen()
    funded(alice, 100)

    moved = transfer("spend:1", f"citizen:{alice}", "merchant:7", 30, "spend", details={"offer": 3})

    assert (moved.id, moved.kind, moved.amount, moved.citizen_id) == (transfer_id_for("spend:1"), "spend", 30, alice)
    assert moved.details == {"offer": 3}
    assert moved.request_hash is not None
    assert account_balances(alice) == Balances(available=70, held=0, earned_total=100, spent_total=30)
    assert balance_of("merchant:7") == (0, 30, 0, 0)
    assert check_invariants() == []


def test_transfer_refuses_to_overdraw_a_citizen_and_leaves_nothing_behind(db_session):
    alice = make_citizen()
    funded(alice, 20)
    count = transfer_count()

    with pytest.raises(AppError) as excinfo:
        transfer("spend:1", f"citizen:{alice}", "merchant:7", 21, "spend")

    assert error_code(excinfo) == ("insufficient_points", 409)
    assert excinfo.value.message_zh == "积分不足。"
    assert transfer_count() == count  # the caught error rolled its own savepoint back
    assert account_balances(alice).available == 20
    assert check_invariants() == []
    transfer("spend:1", f"citizen:{alice}", "merchant:7", 20, "spend")  # the key is still free
    assert account_balances(alice).available == 0


def test_a_citizen_without_an_account_has_nothing_to_spend(db_session):
    alice = make_citizen()
    with pytest.raises(AppError) as excinfo:
        transfer("spend:1", f"citizen:{alice}", "merchant:7", 1, "spend")
    assert error_code(excinfo) == ("insufficient_points", 409)


def test_system_accounts_may_go_negative_in_net_terms(db_session):
    """Only citizens are guarded: a pool or merchant just accumulates debits."""
    alice = make_citizen()
    transfer("adjust:1", "adjustment:ops", f"citizen:{alice}", 15, "adjust")
    assert account_balances(alice).available == 15
    assert balance_of("adjustment:ops") == (15, 0, 0, 0)


def test_the_same_key_again_returns_the_first_transfer(db_session):
    alice = make_citizen()
    funded(alice, 100)
    first = transfer("spend:1", f"citizen:{alice}", "merchant:7", 30, "spend")
    again = transfer("spend:1", f"citizen:{alice}", "merchant:7", 30, "spend")
    assert again.id == first.id
    assert account_balances(alice).available == 70


def test_the_same_key_with_a_different_request_is_refused(db_session):
    alice = make_citizen()
    funded(alice, 100)
    transfer("spend:1", f"citizen:{alice}", "merchant:7", 30, "spend")

    with pytest.raises(AppError) as changed_amount:
        transfer("spend:1", f"citizen:{alice}", "merchant:7", 31, "spend")
    with pytest.raises(AppError) as changed_hash:
        transfer("spend:1", f"citizen:{alice}", "merchant:7", 30, "spend", request_hash=b"another request")

    assert error_code(changed_amount) == ("idempotency_key_reused", 422)
    assert error_code(changed_hash) == ("idempotency_key_reused", 422)
    assert account_balances(alice).available == 70


def test_an_explicit_request_hash_is_what_replays_compare(db_session):
    alice = make_citizen()
    funded(alice, 100)
    first = transfer("spend:1", f"citizen:{alice}", "merchant:7", 30, "spend", request_hash=b"h1")
    assert transfer("spend:1", f"citizen:{alice}", "merchant:7", 30, "spend", request_hash=b"h1").id == first.id


def test_an_earning_key_cannot_be_replayed_as_a_transfer(db_session):
    alice = make_citizen()
    funded(alice, 100)
    with pytest.raises(AppError) as excinfo:
        transfer(f"fund:{alice}:100", f"citizen:{alice}", "merchant:7", 100, "spend")
    assert error_code(excinfo) == ("idempotency_key_reused", 422)


@pytest.mark.parametrize(
    ("debit", "credit", "amount", "kind", "message"),
    [
        ("citizen:1", "merchant:1", 0, "spend", "positive"),
        ("merchant:1", "merchant:1", 5, "spend", "two different"),
        ("citizen:1", "merchant:1", 5, "hold", "reserved"),
        ("nonsense:1", "merchant:1", 5, "spend", "unknown ledger account"),
    ],
)
def test_transfer_rejects_programming_errors(db_session, debit, credit, amount, kind, message):
    with pytest.raises(ValueError, match=message):
        transfer("x:1", debit, credit, amount, kind)


def test_the_database_check_is_translated_to_409_if_the_guard_ever_fails(db_session, monkeypatch):
    """The CHECK citizen_available_non_negative is the last line of defence: a 409, never a 500."""
    alice = make_citizen()
    funded(alice, 5)
    unguarded = text("UPDATE ledger_accounts SET debits_posted = debits_posted + :amount WHERE id = :id")
    monkeypatch.setattr(ledger, "_DEBIT_POSTED", unguarded)
    with pytest.raises(AppError) as excinfo:
        transfer("spend:1", f"citizen:{alice}", "merchant:7", 6, "spend")
    assert error_code(excinfo) == ("insufficient_points", 409)
    assert account_balances(alice).available == 5
    assert check_invariants() == []


# ---- holds --------------------------------------------------------------------------------------


def test_a_hold_reserves_points_until_it_is_posted(db_session):
    alice = make_citizen()
    funded(alice, 100)

    held = hold("claim:1", alice, "merchant:7", 40, timeout_at=LATER, details={"offer": 1})

    assert (held.kind, held.pending, held.citizen_id, held.timeout_at) == ("hold", True, alice, LATER)
    assert account_balances(alice) == Balances(available=60, held=40, earned_total=100, spent_total=0)
    assert balance_of("merchant:7") == (0, 0, 0, 40)
    assert check_invariants() == []

    posted = post_pending(held.id, "redeem:1")

    assert (posted.kind, posted.pending_id, posted.amount, posted.citizen_id) == ("post", held.id, 40, alice)
    assert account_balances(alice) == Balances(available=60, held=0, earned_total=100, spent_total=40)
    assert balance_of("merchant:7") == (0, 40, 0, 0)
    assert check_invariants() == []


def test_voiding_a_hold_gives_the_points_back(db_session):
    alice = make_citizen()
    funded(alice, 100)
    held = hold("claim:1", alice, "merchant:7", 40, timeout_at=LATER)

    voided = void_pending(held.id, "cancel:1")

    assert (voided.kind, voided.pending_id) == ("void", held.id)
    assert account_balances(alice) == Balances(available=100, held=0, earned_total=100, spent_total=0)
    assert balance_of("merchant:7") == (0, 0, 0, 0)
    assert check_invariants() == []


def test_a_hold_cannot_exceed_the_available_balance(db_session):
    alice = make_citizen()
    funded(alice, 100)
    hold("claim:1", alice, "merchant:7", 70, timeout_at=LATER)
    with pytest.raises(AppError) as excinfo:
        hold("claim:2", alice, "merchant:7", 31, timeout_at=LATER)
    assert error_code(excinfo) == ("insufficient_points", 409)
    with pytest.raises(AppError):
        transfer("spend:1", f"citizen:{alice}", "merchant:7", 31, "spend")  # held points are not available
    assert account_balances(alice).held == 70


def test_a_hold_replays_and_refuses_a_changed_request(db_session):
    alice = make_citizen()
    funded(alice, 100)
    first = hold("claim:1", alice, "merchant:7", 10, timeout_at=LATER)
    assert hold("claim:1", alice, "merchant:7", 10, timeout_at=LATER).id == first.id
    with pytest.raises(AppError) as excinfo:
        hold("claim:1", alice, "merchant:7", 11, timeout_at=LATER)
    assert error_code(excinfo) == ("idempotency_key_reused", 422)
    assert account_balances(alice).held == 10


def test_a_hold_resolves_exactly_once(db_session):
    alice = make_citizen()
    funded(alice, 100)
    held = hold("claim:1", alice, "merchant:7", 40, timeout_at=LATER)
    posted = post_pending(held.id, "redeem:1")

    assert post_pending(held.id, "redeem:1").id == posted.id  # replay
    for resolve, key in ((post_pending, "redeem:2"), (void_pending, "cancel:1")):
        with pytest.raises(AppError) as excinfo:
            resolve(held.id, key)
        assert error_code(excinfo) == ("hold_already_resolved", 409)
    assert account_balances(alice) == Balances(available=60, held=0, earned_total=100, spent_total=40)
    assert check_invariants() == []


def test_a_voided_hold_cannot_be_posted(db_session):
    alice = make_citizen()
    funded(alice, 100)
    held = hold("claim:1", alice, "merchant:7", 40, timeout_at=LATER)
    void_pending(held.id, "cancel:1")
    assert void_pending(held.id, "cancel:1").kind == "void"  # replay
    with pytest.raises(AppError) as excinfo:
        post_pending(held.id, "redeem:1")
    assert error_code(excinfo) == ("hold_already_resolved", 409)
    assert account_balances(alice).available == 100


def test_a_resolution_key_used_for_something_else_is_refused(db_session):
    alice = make_citizen()
    funded(alice, 100)
    first = hold("claim:1", alice, "merchant:7", 10, timeout_at=LATER)
    second = hold("claim:2", alice, "merchant:7", 10, timeout_at=LATER)
    post_pending(first.id, "redeem:1")
    for resolve, pending_id in ((post_pending, second.id), (void_pending, first.id)):
        with pytest.raises(AppError) as excinfo:
            resolve(pending_id, "redeem:1")
        assert error_code(excinfo) == ("idempotency_key_reused", 422)


def test_an_expired_hold_can_be_voided_but_not_posted(db_session):
    alice = make_citizen()
    funded(alice, 100)
    held = hold("claim:1", alice, "merchant:7", 40, timeout_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(AppError) as excinfo:
        post_pending(held.id, "redeem:1")
    assert error_code(excinfo) == ("hold_expired", 409)
    void_pending(held.id, "expire:claim:1")
    assert account_balances(alice).available == 100


def test_only_a_hold_can_be_resolved(db_session):
    alice = make_citizen()
    funded(alice, 100)
    plain = transfer("spend:1", f"citizen:{alice}", "merchant:7", 1, "spend")
    for pending_id in (plain.id, uuid.uuid4()):
        with pytest.raises(AppError) as excinfo:
            post_pending(pending_id, f"redeem:{pending_id}")
        assert error_code(excinfo) == ("hold_not_found", 404)


# ---- reading ------------------------------------------------------------------------------------


def test_a_citizen_without_an_account_has_zero_balances(db_session):
    assert account_balances(make_citizen()) == Balances(0, 0, 0, 0)


def test_ledger_entries_show_signed_amounts_and_how_holds_ended(db_session):
    alice = make_citizen()
    funded(alice, 100)
    pending = hold("claim:1", alice, "merchant:7", 10, timeout_at=LATER)
    posted = hold("claim:2", alice, "merchant:7", 20, timeout_at=LATER)
    voided = hold("claim:3", alice, "merchant:7", 30, timeout_at=LATER)
    post_pending(posted.id, "redeem:2")
    void_pending(voided.id, "cancel:3")

    entries = {e["id"]: e for e in ledger_entries(alice, cursor=None, limit=100)["items"]}

    assert len(entries) == 4  # resolutions show through their hold, not as entries of their own
    assert entries[transfer_id_for(f"fund:{alice}:100")]["amount"] == 100
    assert entries[transfer_id_for(f"fund:{alice}:100")]["direction"] == "in"
    assert {(entries[t.id]["amount"], entries[t.id]["direction"], entries[t.id]["status"]) for t in
            (pending, posted, voided)} == {(-10, "out", "pending"), (-20, "out", "posted"), (-30, "out", "voided")}


# ---- invariants ---------------------------------------------------------------------------------


def test_check_invariants_finds_a_balance_that_drifted(db_session):
    alice = make_citizen()
    funded(alice, 100)
    db.session.execute(text("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE citizen_id = :c"),
                       {"c": alice})
    problems = check_invariants()
    assert any("balance differs" in p and f"citizen:{alice}" in p for p in problems)
    assert any("do not balance" in p for p in problems)


def test_check_invariants_finds_a_negative_citizen(db_session):
    alice = make_citizen()
    # only inside this test's rolled-back transaction
    db.session.execute(
        text("ALTER TABLE ledger_accounts DROP CONSTRAINT ck_ledger_accounts_citizen_available_non_negative")
    )
    db.session.execute(
        text(
            "INSERT INTO ledger_accounts (code, kind, citizen_id, debits_posted, credits_posted, debits_pending,"
            " credits_pending) VALUES (:code, 'citizen', :c, 5, 0, 0, 0)"
        ),
        {"code": f"citizen:{alice}", "c": alice},
    )
    problems = check_invariants()
    assert any("below zero" in p for p in problems)


def test_check_invariants_finds_a_transfer_naming_a_missing_account(db_session):
    """Transfers carry no foreign key to their accounts (too costly on the earn path): the check covers it."""
    alice = make_citizen()
    funded(alice, 100)
    db.session.execute(
        text(
            "INSERT INTO ledger_transfers (id, idempotency_key, kind, debit_account_id, credit_account_id, amount,"
            " pending, citizen_id, details) VALUES (:id, 'stray', 'adjust', 999999, 999998, 1, false, NULL, '{}')"
        ),
        {"id": transfer_id_for("stray")},
    )
    problems = check_invariants()
    assert any("does not exist" in p and "debit account 999999" in p for p in problems)
    assert any("does not exist" in p and "credit account 999998" in p for p in problems)


def test_ledger_accounts_are_never_deleted(db_session):
    alice = make_citizen()
    funded(alice, 100)
    with pytest.raises(Exception, match="never deleted"), db.session.begin_nested():
        db.session.execute(text("DELETE FROM ledger_accounts WHERE citizen_id = :c"), {"c": alice})


def test_check_invariants_finds_a_missing_explanation(db_session):
    alice = make_citizen()
    funded(alice, 100)
    # only inside this test's rolled-back transaction
    db.session.execute(text("ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_append_only"))
    db.session.execute(text("UPDATE ledger_transfers SET explanation_id = :x"), {"x": uuid.uuid4()})
    assert any("explanation that does not exist" in p for p in check_invariants())
