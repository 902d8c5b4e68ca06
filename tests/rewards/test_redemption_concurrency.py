"""Redemption under concurrency on real PostgreSQL: exactly one of many simultaneous attempts wins."""
from __future__ import annotations

from typing import Any

from sqlalchemy import text

from app.extensions import db
from app.ledger.service import account_balances
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.ledger.conftest import run_in_threads
from tests.rewards.factories import make_merchant, make_merchant_staff
from tests.rewards.test_coupons_support import assert_ledger_consistent, give_points, make_offer

REPETITIONS = 50
ATTEMPTS = 20


def _answer(response: Any) -> tuple[int, str | None]:
    body = response.get_json(silent=True) or {}
    return response.status_code, (body.get("error") or {}).get("code")


def test_twenty_concurrent_redemptions_at_two_stores_succeed_exactly_once_fifty_times(app, committed):
    merchant_id, stores = make_merchant()
    staff = [make_merchant_staff(merchant_id, [store])[0] for store in stores]  # one cashier per store
    offer_id = make_offer(merchant_id, points_price=10, total_stock=REPETITIONS, per_citizen_limit=REPETITIONS)
    citizen_id = make_citizen()
    give_points(citizen_id, 10 * REPETITIONS)
    db.session.commit()
    client = app.test_client()
    citizen = bearer_for(citizen_id)
    cashiers = [bearer_as(f"merchant_staff:{s}", "merchant_staff") for s in staff]

    for repetition in range(REPETITIONS):
        coupon = client.post(f"/api/v1/offers/{offer_id}/claim",
                             headers={**citizen, "Idempotency-Key": f"claim-{repetition}"}).json
        qr = client.get(f"/api/v1/me/coupons/{coupon['id']}/qr", headers=citizen).json

        def attempt(i: int, qr: dict = qr, repetition: int = repetition) -> tuple[int, str | None]:
            code = {"token": qr["token"]} if i % 4 else {"short_code": qr["short_code"]}
            response = app.test_client().post(
                "/api/v1/merchant/redemptions",
                json={"store_id": stores[i % 2], **code},
                headers={**cashiers[i % 2], "Idempotency-Key": f"r{repetition}-{i}"},
            )
            return _answer(response)

        results = run_in_threads(app, ATTEMPTS, attempt)

        assert results.count((201, None)) == 1, (repetition, results)
        assert [r for r in results if r != (201, None)] == [(409, "coupon_already_used")] * (ATTEMPTS - 1)

    db.session.rollback()
    assert db.session.scalar(text("SELECT count(*) FROM coupon_redemptions")) == REPETITIONS
    assert db.session.scalar(text("SELECT count(*) FROM ledger_transfers WHERE kind = 'post'")) == REPETITIONS
    balances = account_balances(citizen_id)
    assert (balances.available, balances.held, balances.spent_total) == (0, 0, 10 * REPETITIONS)
    assert_ledger_consistent()


def test_a_cancel_racing_redemptions_leaves_exactly_one_outcome(app, committed):
    merchant_id, stores = make_merchant()
    cashier = bearer_as(f"merchant_staff:{make_merchant_staff(merchant_id)[0]}", "merchant_staff")
    offer_id = make_offer(merchant_id, points_price=10, per_citizen_limit=20)
    citizen_id = make_citizen()
    give_points(citizen_id, 1000)
    db.session.commit()
    client = app.test_client()
    citizen = bearer_for(citizen_id)

    for repetition in range(10):
        coupon = client.post(f"/api/v1/offers/{offer_id}/claim",
                             headers={**citizen, "Idempotency-Key": f"claim-{repetition}"}).json
        token = client.get(f"/api/v1/me/coupons/{coupon['id']}/qr", headers=citizen).json["token"]

        def attempt(i: int, coupon_id: int = coupon["id"], token: str = token) -> tuple[str, int, str | None]:
            if i % 2:
                return ("cancel", *_answer(app.test_client().post(f"/api/v1/me/coupons/{coupon_id}/cancel",
                                                                  headers=citizen)))
            return ("redeem", *_answer(app.test_client().post(
                "/api/v1/merchant/redemptions", json={"store_id": stores[0], "token": token},
                headers={**cashier, "Idempotency-Key": f"x{coupon_id}-{i}"})))

        results = run_in_threads(app, 10, attempt)

        winners = [r for r in results if r[1] in (200, 201)]
        assert len(winners) == 1, results
        losers = {r[2] for r in results if r[1] not in (200, 201)}
        assert losers == ({"coupon_already_used"} if winners[0][0] == "redeem" else {"coupon_cancelled"})

    db.session.rollback()
    assert account_balances(citizen_id).held == 0
    assert_ledger_consistent()
