"""Claims under concurrency on real PostgreSQL: each thread its own app context, session and connection.

The requests go through the whole HTTP stack (auth, Idempotency-Key, the request boundary's commit);
the invariants are checked in SQL afterwards.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import text

from app.extensions import db
from app.ledger.service import account_balances
from tests.conftest import bearer_for, make_citizen
from tests.ledger.conftest import run_in_threads
from tests.rewards.factories import make_merchant
from tests.rewards.test_coupons_support import assert_ledger_consistent, give_points, make_offer


def _answer(response: Any) -> tuple[int, str | None]:
    body = response.get_json(silent=True) or {}
    return response.status_code, (body.get("error") or {}).get("code")


def test_fifty_citizens_race_for_the_last_ten_coupons(app, committed):
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, total_stock=12, points_price=100)
    early = [make_citizen() for _ in range(2)]
    racers = [make_citizen() for _ in range(50)]
    for citizen_id in early + racers:
        give_points(citizen_id, 300)
    db.session.commit()
    client = app.test_client()
    for citizen_id in early:  # two already claimed: ten are left
        assert client.post(f"/api/v1/offers/{offer_id}/claim",
                           headers={**bearer_for(citizen_id), "Idempotency-Key": "early"}).status_code == 201
    headers = [{**bearer_for(c), "Idempotency-Key": f"race-{c}"} for c in racers]

    results = run_in_threads(
        app, 50, lambda i: _answer(app.test_client().post(f"/api/v1/offers/{offer_id}/claim", headers=headers[i]))
    )

    assert sorted(results, key=str).count((201, None)) == 10, results
    assert [r for r in results if r != (201, None)] == [(409, "out_of_stock")] * 40
    db.session.rollback()
    assert db.session.scalar(text("SELECT remaining FROM offers WHERE id = :id"), {"id": offer_id}) == 0
    assert db.session.scalar(text("SELECT count(*) FROM coupons WHERE offer_id = :id"), {"id": offer_id}) == 12
    winners = {c for c, r in zip(racers, results, strict=True) if r == (201, None)}
    assert {c: account_balances(c).held for c in racers} == {c: 100 if c in winners else 0 for c in racers}
    open_holds = db.session.scalar(text(
        "SELECT count(*) FROM ledger_transfers h WHERE h.kind = 'hold' "
        "AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = h.id)"))
    assert open_holds == 12
    assert_ledger_consistent()


def test_one_citizen_claiming_twenty_times_at_once_stays_within_the_limit(app, committed):
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, total_stock=100, points_price=10, per_citizen_limit=3)
    citizen_id = make_citizen()
    give_points(citizen_id, 1000)
    db.session.commit()
    headers = [{**bearer_for(citizen_id), "Idempotency-Key": f"limit-{i}"} for i in range(20)]
    db.session.commit()  # the signing key made by the first token, for the other connections

    results = run_in_threads(
        app, 20, lambda i: _answer(app.test_client().post(f"/api/v1/offers/{offer_id}/claim", headers=headers[i]))
    )

    assert results.count((201, None)) == 3, results
    assert [r for r in results if r != (201, None)] == [(409, "claim_limit_reached")] * 17
    db.session.rollback()
    assert account_balances(citizen_id).held == 30
    assert db.session.scalar(text("SELECT remaining FROM offers WHERE id = :id"), {"id": offer_id}) == 97
    assert_ledger_consistent()


def test_concurrent_claims_never_hold_more_points_than_the_citizen_has(app, committed):
    merchant_id, _ = make_merchant()
    offers = [make_offer(merchant_id, points_price=100, per_citizen_limit=10) for _ in range(2)]
    citizen_id = make_citizen()
    give_points(citizen_id, 250)
    db.session.commit()
    headers = [{**bearer_for(citizen_id), "Idempotency-Key": f"spend-{i}"} for i in range(10)]
    db.session.commit()  # the signing key made by the first token, for the other connections

    results = run_in_threads(
        app, 10,
        lambda i: _answer(app.test_client().post(f"/api/v1/offers/{offers[i % 2]}/claim", headers=headers[i])),
    )

    assert results.count((201, None)) == 2, results
    assert [r for r in results if r != (201, None)] == [(409, "insufficient_points")] * 8
    db.session.rollback()
    balances = account_balances(citizen_id)
    assert (balances.available, balances.held) == (50, 200)
    # The refused claims gave their stock and their counts back (their transactions rolled back).
    assert db.session.scalar(text("SELECT sum(total_stock - remaining) FROM offers")) == 2
    assert db.session.scalar(text("SELECT coalesce(sum(claimed), 0) FROM offer_claim_counts")) == 2
    assert_ledger_consistent()
