"""Claiming coupons (points held, stock and limits), cancelling, expiry, my coupons and the rotating QR."""
from __future__ import annotations

import base64
from datetime import timedelta

import time_machine
from sqlalchemy import text

from app.extensions import db
from app.ledger.service import account_balances, pending_credits
from app.models_base import utcnow
from rewards.coupons import tokens
from rewards.coupons.models import Coupon, Offer
from rewards.merchants.service import merchant_account_code
from tests.conftest import bearer_for, make_citizen
from tests.rewards.factories import make_merchant
from tests.rewards.test_coupons_support import assert_ledger_consistent, give_points, idem, make_offer


def _citizen(points: int = 1000) -> tuple[int, dict[str, str]]:
    citizen_id = make_citizen()
    if points:
        give_points(citizen_id, points)
    return citizen_id, bearer_for(citizen_id)


def _merchant_pending(merchant_id: int) -> tuple[int, int]:
    """(points held for the merchant by open holds, points posted to it); the former is derived."""
    code = merchant_account_code(merchant_id)
    posted = db.session.scalar(text("SELECT credits_posted FROM ledger_accounts WHERE code = :code"), {"code": code})
    return pending_credits(code), posted or 0


def test_a_claim_holds_the_points_takes_stock_and_issues_a_coupon(client, db_session):
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=120, total_stock=5, valid_days=7, points_budget=1000)
    citizen_id, headers = _citizen(1000)
    db_session.commit()

    response = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem("claim-1")})

    assert response.status_code == 201, response.json
    coupon = response.json
    assert (coupon["status"], coupon["points"], coupon["offer_id"], coupon["title_zh"]) == (
        "issued", 120, offer_id, "拿铁立减5元")
    balances = account_balances(citizen_id)
    assert (balances.available, balances.held) == (880, 120)
    assert _merchant_pending(merchant_id) == (120, 0)
    offer = db.session.get(Offer, offer_id, populate_existing=True)
    assert (offer.remaining, offer.budget_used) == (4, 120)
    stored = db.session.get(Coupon, coupon["id"])
    hold_row = db.session.execute(text("SELECT pending, amount, timeout_at, details FROM ledger_transfers "
                                       "WHERE id = :id"), {"id": stored.hold_id}).one()
    assert hold_row.pending and hold_row.amount == 120 and hold_row.timeout_at == stored.expires_at
    assert hold_row.details["coupon_id"] == coupon["id"]
    assert stored.expires_at - stored.valid_from == timedelta(days=7)
    assert_ledger_consistent()


def test_a_replayed_claim_returns_the_same_coupon_and_holds_once(client, db_session):
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=100)
    citizen_id, headers = _citizen(1000)
    db_session.commit()

    first = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem("same-key")})
    again = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem("same-key")})

    assert again.status_code == 201 and again.json == first.json
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert account_balances(citizen_id).held == 100
    other_offer = make_offer(merchant_id)
    db_session.commit()
    reused = client.post(f"/api/v1/offers/{other_offer}/claim", headers={**headers, **idem("same-key")})
    assert (reused.status_code, reused.json["error"]["code"]) == (422, "idempotency_key_reused")
    missing = client.post(f"/api/v1/offers/{offer_id}/claim", headers=headers)
    assert (missing.status_code, missing.json["error"]["code"]) == (400, "idempotency_key_required")


def test_claim_refusals(client, db_session):
    merchant_id, _ = make_merchant()
    now = utcnow()
    sold_out = make_offer(merchant_id, total_stock=0)
    limited = make_offer(merchant_id, per_citizen_limit=1)
    pricey = make_offer(merchant_id, points_price=5000)
    closed = make_offer(merchant_id, claim_starts_at=now - timedelta(days=5), claim_ends_at=now - timedelta(days=1))
    used_up = make_offer(merchant_id, use_ends_at=now - timedelta(hours=1), valid_days=None,
                         claim_starts_at=now - timedelta(days=5))
    budgeted = make_offer(merchant_id, points_price=100, points_budget=100)
    draft = make_offer(merchant_id, status="draft")
    citizen_id, headers = _citizen(1000)
    _, other_headers = _citizen(1000)
    db_session.commit()

    def claim(offer_id: int, who: dict[str, str] = headers):
        return client.post(f"/api/v1/offers/{offer_id}/claim", headers={**who, **idem()})

    assert claim(limited).status_code == 201
    assert budgeted and claim(budgeted).status_code == 201
    for offer_id, status, code in (
        (sold_out, 409, "out_of_stock"),
        (limited, 409, "claim_limit_reached"),
        (pricey, 409, "insufficient_points"),
        (closed, 409, "offer_not_available"),
        (used_up, 409, "offer_not_available"),
        (draft, 404, "offer_not_found"),
        (10**12, 404, "offer_not_found"),
    ):
        response = claim(offer_id)
        assert (response.status_code, response.json["error"]["code"]) == (status, code), offer_id
    exhausted = claim(budgeted, other_headers)
    assert (exhausted.status_code, exhausted.json["error"]["code"]) == (409, "out_of_stock")
    # Nothing of a refused claim stays behind: stock, counters and the balance are as before.
    assert db.session.get(Offer, pricey, populate_existing=True).remaining == 50
    assert account_balances(citizen_id).held == 200
    assert db.session.scalar(text("SELECT count(*) FROM offer_claim_counts WHERE offer_id = :o"), {"o": pricey}) == 0
    assert client.post(f"/api/v1/offers/{limited}/claim", headers=idem()).status_code == 401
    assert_ledger_consistent()


def test_cancelling_an_unused_coupon_returns_the_points_the_stock_and_the_claim(client, db_session):
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=100, per_citizen_limit=1, total_stock=1, points_budget=100)
    citizen_id, headers = _citizen(300)
    _, stranger = _citizen(0)
    db_session.commit()
    coupon = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem()}).json

    assert client.post(f"/api/v1/me/coupons/{coupon['id']}/cancel", headers=stranger).json["error"]["code"] == \
        "coupon_not_found"
    cancelled = client.post(f"/api/v1/me/coupons/{coupon['id']}/cancel", headers=headers)

    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert (account_balances(citizen_id).available, account_balances(citizen_id).held) == (300, 0)
    offer = db.session.get(Offer, offer_id, populate_existing=True)
    assert (offer.remaining, offer.budget_used) == (1, 0)
    assert _merchant_pending(merchant_id) == (0, 0)
    again = client.post(f"/api/v1/me/coupons/{coupon['id']}/cancel", headers=headers)
    assert (again.status_code, again.json["error"]["code"]) == (409, "coupon_cancelled")
    # The claim came back: the limit of one allows a new claim.
    assert client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem()}).status_code == 201
    assert_ledger_consistent()


def test_the_expiry_job_voids_unused_coupons_once(app, client, db_session):
    from rewards.coupons.service import expire_due_coupons

    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=100, valid_days=1)
    citizen_id, headers = _citizen(500)
    db_session.commit()
    expiring = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem()}).json
    kept = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem()}).json
    client.post(f"/api/v1/me/coupons/{kept['id']}/cancel", headers=headers)
    assert account_balances(citizen_id).held == 100

    assert expire_due_coupons() == 0  # nothing is due yet
    with time_machine.travel(utcnow() + timedelta(days=1, seconds=1), tick=False):
        assert expire_due_coupons() == 1
        db_session.commit()  # the job boundary
        assert expire_due_coupons() == 0  # a rerun changes nothing
        late = client.post(f"/api/v1/me/coupons/{expiring['id']}/cancel", headers=bearer_for(citizen_id))
        assert (late.status_code, late.json["error"]["code"]) == (409, "coupon_expired")

    assert db.session.get(Coupon, expiring["id"], populate_existing=True).status == "expired"
    assert (account_balances(citizen_id).available, account_balances(citizen_id).held) == (500, 0)
    assert db.session.get(Offer, offer_id, populate_existing=True).remaining == 49  # an expired claim keeps its stock
    assert_ledger_consistent()


def test_my_coupons_are_mine_paged_and_filtered(client, db_session):
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=10, per_citizen_limit=5)
    citizen_id, headers = _citizen(1000)
    _, stranger = _citizen(0)
    db_session.commit()
    ids = [client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem()}).json["id"]
           for _ in range(3)]
    client.post(f"/api/v1/me/coupons/{ids[0]}/cancel", headers=headers)

    first = client.get("/api/v1/me/coupons?limit=2", headers=headers).json
    rest = client.get(f"/api/v1/me/coupons?limit=2&cursor={first['next_cursor']}", headers=headers).json
    assert [c["id"] for c in first["items"] + rest["items"]] == ids[::-1] and rest["next_cursor"] is None
    issued = client.get("/api/v1/me/coupons?status=issued", headers=headers).json["items"]
    assert [c["id"] for c in issued] == ids[:0:-1]
    assert client.get("/api/v1/me/coupons?status=lost", headers=headers).status_code == 400
    assert client.get(f"/api/v1/me/coupons/{ids[1]}", headers=headers).json["merchant_name_zh"] == "绿色咖啡"
    assert client.get(f"/api/v1/me/coupons/{ids[1]}", headers=stranger).status_code == 404
    assert client.get("/api/v1/me/coupons", headers=stranger).json["items"] == []


def test_the_qr_token_and_short_code_rotate_and_expire_after_sixty_seconds(client, db_session, redis):
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id)
    _, headers = _citizen(1000)
    _, stranger = _citizen(0)
    db_session.commit()
    coupon = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem()}).json
    start = utcnow()

    with time_machine.travel(start, tick=False):
        shown = client.get(f"/api/v1/me/coupons/{coupon['id']}/qr", headers=headers)
        assert shown.status_code == 200
        qr = shown.json
        assert qr["qr_png"].startswith("data:image/png;base64,")
        assert base64.b64decode(qr["qr_png"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(qr["short_code"]) == 8 and qr["short_code"].isdigit()
        assert tokens.coupon_of_token(qr["token"]) == coupon["id"]
        assert tokens.coupon_of_short_code(merchant_id, qr["short_code"]) == coupon["id"]
        assert redis.ttl(f"coupon:code:{merchant_id}:{qr['short_code']}") == 60
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        assert tokens.coupon_of_token(qr["token"]) == coupon["id"]
        rotated = client.get(f"/api/v1/me/coupons/{coupon['id']}/qr", headers=headers).json
        assert rotated["token"] != qr["token"] and rotated["short_code"] != qr["short_code"]
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        for check in (lambda: tokens.coupon_of_token(qr["token"]),
                      lambda: tokens.coupon_of_short_code(merchant_id, qr["short_code"])):
            try:
                check()
                raise AssertionError("a 61-second-old code was accepted")
            except Exception as exc:  # noqa: BLE001
                assert getattr(exc, "code", None) == "token_expired"
    assert client.get(f"/api/v1/me/coupons/{coupon['id']}/qr", headers=stranger).status_code == 404


def test_a_forged_token_is_refused(app, db_session):
    from app.errors import AppError

    good = tokens.issue(7, 1).token
    prefix, coupon_id, issued, signature = good.split(".")
    for forged in (f"{prefix}.8.{issued}.{signature}", f"{prefix}.{coupon_id}.{int(issued) + 1}.{signature}",
                   "c1.7", "garbage", f"c2.{coupon_id}.{issued}.{signature}", good[:-1] + ("A" if good[-1] != "A"
                                                                                          else "B")):
        try:
            tokens.coupon_of_token(forged)
            raise AssertionError(f"accepted {forged}")
        except AppError as exc:
            assert exc.code == "invalid_coupon_token"


def test_a_short_code_collision_with_another_coupon_takes_the_next_code(app, db_session, redis):
    key = tokens._key()
    with time_machine.travel(utcnow(), tick=False):
        issued = int(utcnow().timestamp())
        token = f"c1.5.{issued}.{tokens._signature(key, 5, issued)}"
        taken = tokens.derive_short_code(key, token, 0)
        redis.set(f"coupon:code:1:{taken}", f"99:{issued}", ex=60)
        result = tokens.issue(5, 1)
    assert result.token == token and result.short_code == tokens.derive_short_code(key, token, 1)
    assert tokens.coupon_of_short_code(1, taken) == 99


def test_a_suspended_merchants_offers_cannot_be_claimed_or_seen(client, db_session):
    from rewards.merchants.models import Merchant

    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id)
    _, headers = _citizen(1000)
    db.session.get(Merchant, merchant_id).status = "suspended"
    db_session.commit()

    claim = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem()})
    assert (claim.status_code, claim.json["error"]["code"]) == (409, "offer_not_available")
    assert client.get("/api/v1/offers", headers=headers).json["items"] == []
    assert client.get(f"/api/v1/offers/{offer_id}", headers=headers).status_code == 404


def test_the_expiry_job_is_an_rq_entry_point_the_scheduler_repeats(app, client, db_session):
    from app import jobs
    from app.scheduler import recurring_jobs

    assert jobs.expire_coupons in [job.func for job in recurring_jobs(app)]
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=100, valid_days=1)
    citizen_id, headers = _citizen(100)
    db_session.commit()
    client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem()})

    with time_machine.travel(utcnow() + timedelta(days=2), tick=False):
        assert jobs.expire_coupons() == 1
        assert jobs.expire_coupons() == 0
    assert account_balances(citizen_id).available == 100
    assert_ledger_consistent()
