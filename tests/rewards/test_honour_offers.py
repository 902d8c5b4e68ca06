"""Honour offers (荣誉兑换): operators publish them, citizens exchange points for a badge at once.

The points are spent (a posted transfer to the badge's honour account, no hold, no coupon), the
badge is granted in the same transaction, and the claim obeys the same limit, stock, budget and
Idempotency-Key rules as a coupon's.
"""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.audit.models import AuditEntry
from app.extensions import db
from app.ledger.service import account_balances, check_invariants
from rewards.coupons.models import HonourExchange, Offer
from rewards.coupons.service import honour_account_code
from rewards.honours.models import CitizenHonour
from rewards.honours.service import load_definitions
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.ledger.conftest import run_in_threads
from tests.rewards.factories import make_merchant, make_merchant_staff, make_staff
from tests.rewards.test_coupons_support import (
    assert_ledger_consistent,
    coupon_invariant_violations,
    give_points,
    idem,
    make_offer,
    offer_body,
)

BADGE = "green_pioneer"  # a `granted` badge of rewards/honours/badges.yaml


def honour_body(**overrides: Any) -> dict[str, Any]:
    body = offer_body(kind="honour", badge_code=BADGE, per_citizen_limit=1, valid_days=None, points_price=200,
                      total_stock=100, title_zh="普惠积分换荣誉：绿色先锋", title_en="Green pioneer honour")
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def make_honour_offer(**overrides: Any) -> int:
    values: dict[str, Any] = {"kind": "honour", "badge_code": BADGE, "per_citizen_limit": 1, "valid_days": None,
                              "points_price": 200, "total_stock": 100, **overrides}
    return make_offer(None, **values)  # type: ignore[arg-type]


def _operator() -> dict[str, str]:
    return bearer_as(f"staff:{make_staff('operator')}", "operator")


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]["code"]


@pytest.fixture
def badges(db_session) -> None:
    load_definitions()


def test_an_operator_publishes_an_honour_offer_and_a_citizen_exchanges_points_for_it(client, badges):
    operator = _operator()
    citizen_id = make_citizen()
    give_points(citizen_id, 500)
    citizen = bearer_for(citizen_id)
    db.session.commit()

    created = client.post("/api/v1/merchant/offers", json=honour_body(), headers=operator)
    assert created.status_code == 201, created.json
    assert (created.json["kind"], created.json["merchant_id"], created.json["badge_code"]) == ("honour", None, BADGE)
    offer_id = created.json["id"]
    assert client.patch(f"/api/v1/merchant/offers/{offer_id}", json={"status": "live"},
                        headers=operator).status_code == 200
    listed = client.get("/api/v1/offers", headers=citizen).json["items"]
    assert [(o["id"], o["kind"], o["merchant_name_zh"], o["claimable"]) for o in listed] == [
        (offer_id, "honour", None, True)]

    claimed = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**citizen, **idem("honour-1")})

    assert claimed.status_code == 201, claimed.json
    body = claimed.json
    assert (body["kind"], body["status"], body["points"], body["merchant_id"], body["expires_at"]) == (
        "honour", "granted", 200, None, None)
    assert (body["honour"]["code"], body["honour"]["source"], body["honour"]["name"]["zh"]) == (
        BADGE, "offer", "绿色先锋")
    balances = account_balances(citizen_id)
    assert (balances.available, balances.held, balances.spent_total) == (300, 0, 200)  # spent, not held
    exchange = db.session.get(HonourExchange, body["id"])
    assert (exchange.offer_id, exchange.citizen_id, exchange.badge_code, exchange.points) == (
        offer_id, citizen_id, BADGE, 200)
    spend = db.session.execute(text(
        "SELECT t.kind, t.pending, t.amount, a.code FROM ledger_transfers t "
        "JOIN ledger_accounts a ON a.id = t.credit_account_id WHERE t.id = :id"), {"id": exchange.transfer_id}).one()
    assert tuple(spend) == ("exchange", False, 200, honour_account_code(BADGE))
    assert db.session.get(CitizenHonour, (citizen_id, BADGE)).source == f"offer:{offer_id}"
    assert db.session.scalar(select(Offer.remaining).where(Offer.id == offer_id)) == 99

    honours = client.get("/api/v1/me/honours", headers=citizen).json
    assert [(b["code"], b["source"]) for b in honours["earned"]] == [(BADGE, "offer")]
    entries = client.get("/api/v1/me/ledger", headers=citizen).json["items"]
    assert (entries[0]["kind"], entries[0]["amount"], entries[0]["explanation"]["badge_code"]) == (
        "exchange", -200, BADGE)
    audits = db.session.execute(select(AuditEntry.action, AuditEntry.object_type, AuditEntry.object_id)
                                .where(AuditEntry.action.in_(("offer.claimed", "honours.granted")))).all()
    assert set(audits) == {("offer.claimed", "honour_exchange", str(body["id"])),
                           ("honours.granted", "honour_badge", BADGE)}
    replay = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**citizen, **idem("honour-1")})
    assert replay.status_code == 201 and replay.json == body and replay.headers["Idempotent-Replayed"] == "true"
    assert account_balances(citizen_id).available == 300
    assert check_invariants() == []
    assert coupon_invariant_violations() == []


def test_an_honour_is_exchanged_once_and_refusals_change_nothing(client, badges):
    first = make_honour_offer(points_price=200)
    second = make_honour_offer(points_price=50)  # another offer of the same badge
    dear = make_honour_offer(badge_code="low_carbon_day_2027", points_price=10_000)
    citizen_id = make_citizen()
    give_points(citizen_id, 1000)
    citizen = bearer_for(citizen_id)
    db.session.commit()
    assert client.post(f"/api/v1/offers/{first}/claim", headers={**citizen, **idem()}).status_code == 201

    again = client.post(f"/api/v1/offers/{first}/claim", headers={**citizen, **idem()})
    other = client.post(f"/api/v1/offers/{second}/claim", headers={**citizen, **idem()})
    poor = client.post(f"/api/v1/offers/{dear}/claim", headers={**citizen, **idem()})
    keyless = client.post(f"/api/v1/offers/{second}/claim", headers=citizen)

    assert _error(again) == (409, "honour_already_held")
    assert _error(other) == (409, "honour_already_held")
    assert _error(poor) == (409, "insufficient_points")
    assert _error(keyless) == (400, "idempotency_key_required")
    assert account_balances(citizen_id).available == 800
    remaining = dict(db.session.execute(select(Offer.id, Offer.remaining).where(Offer.kind == "honour")).all())
    assert remaining == {first: 99, second: 100, dear: 100}
    assert db.session.scalar(select(func.count()).select_from(HonourExchange)) == 1
    assert db.session.get(CitizenHonour, (citizen_id, "low_carbon_day_2027")) is None
    assert check_invariants() == []
    assert coupon_invariant_violations() == []


def test_honour_offers_share_the_stock_and_budget_rules(client, badges):
    sold_out = make_honour_offer(total_stock=1)
    budgeted = make_honour_offer(badge_code="low_carbon_day_2027", points_price=100, points_budget=100)
    citizens = [make_citizen() for _ in range(2)]
    for citizen_id in citizens:
        give_points(citizen_id, 1000)
    headers = [bearer_for(c) for c in citizens]
    db.session.commit()

    for offer_id in (sold_out, budgeted):
        assert client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers[0], **idem()}).status_code == 201
        assert _error(client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers[1], **idem()})) == (
            409, "out_of_stock")
    assert account_balances(citizens[1]).available == 1000
    assert check_invariants() == []


def test_ten_citizens_race_for_three_honours(app, committed):
    load_definitions()
    offer_id = make_honour_offer(total_stock=3)
    racers = [make_citizen() for _ in range(10)]
    for citizen_id in racers:
        give_points(citizen_id, 300)
    headers = [{**bearer_for(c), "Idempotency-Key": f"race-{c}"} for c in racers]
    db.session.commit()

    results = run_in_threads(app, 10, lambda i: _answer(
        app.test_client().post(f"/api/v1/offers/{offer_id}/claim", headers=headers[i])))

    assert sorted(results, key=str) == [(201, None)] * 3 + [(409, "out_of_stock")] * 7, results
    db.session.rollback()
    assert db.session.scalar(text("SELECT remaining FROM offers WHERE id = :id"), {"id": offer_id}) == 0
    assert db.session.scalar(text("SELECT count(*) FROM citizen_honours WHERE badge_code = :b"), {"b": BADGE}) == 3
    assert_ledger_consistent()


def _answer(response: Any) -> tuple[int, str | None]:
    body = response.get_json(silent=True) or {}
    return response.status_code, (body.get("error") or {}).get("code")


def test_only_operators_publish_honour_offers_and_only_for_exchangeable_badges(client, badges):
    operator = _operator()
    merchant_id, _ = make_merchant()
    admin_id, _ = make_merchant_staff(merchant_id, role="merchant_admin")
    admin = bearer_as(f"merchant_staff:{admin_id}", "merchant_admin")
    db.session.commit()

    def create(headers: dict[str, str], **overrides: Any) -> tuple[int, str]:
        return _error(client.post("/api/v1/merchant/offers", json=honour_body(**overrides), headers=headers))

    assert create(admin) == (403, "honour_offer_operator_only")
    assert create(operator, merchant_id=merchant_id) == (400, "merchant_not_allowed")
    assert create(operator, badge_code="metro_10") == (400, "invalid_badge")  # earned by behaviour only
    assert create(operator, badge_code="no_such_badge") == (400, "invalid_badge")
    assert create(operator, per_citizen_limit=2) == (400, "invalid_claim_limit")
    assert create(operator, valid_days=30) == (400, "invalid_use_window")
    coupon = client.post("/api/v1/merchant/offers", json=offer_body(merchant_id=merchant_id, badge_code=BADGE),
                         headers=operator)
    assert _error(coupon) == (400, "invalid_badge")
    draft = client.post("/api/v1/merchant/offers", json=honour_body(), headers=operator).json
    assert _error(client.patch(f"/api/v1/merchant/offers/{draft['id']}", json={"kind": "coupon"},
                               headers=operator)) == (409, "offer_kind_fixed")
    # A merchant admin neither sees nor manages the platform's honour offers.
    assert client.get(f"/api/v1/merchant/offers/{draft['id']}", headers=admin).status_code == 404
    assert draft["id"] not in [o["id"] for o in client.get("/api/v1/merchant/offers", headers=admin).json["items"]]


def test_an_honour_exchange_never_reaches_a_merchant_settlement(client, badges):
    merchant_id, _ = make_merchant()
    admin_id, _ = make_merchant_staff(merchant_id, role="merchant_admin")
    admin = bearer_as(f"merchant_staff:{admin_id}", "merchant_admin")
    offer_id = make_honour_offer()
    citizen_id = make_citizen()
    give_points(citizen_id, 500)
    citizen = bearer_for(citizen_id)
    db.session.commit()
    claimed = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**citizen, **idem()})
    assert claimed.status_code == 201

    month = claimed.json["claimed_at"][:7]
    csv_text = client.get(f"/api/v1/merchant/settlement?month={month}", headers=admin).get_data(as_text=True)

    assert csv_text.splitlines()[-1].endswith(",0")  # net_points 0: nothing of the exchange
    assert client.get("/api/v1/me/coupons", headers=citizen).json["items"] == []  # no coupon to show
    merchant_credits = db.session.scalar(text(
        "SELECT coalesce(sum(credits_posted), 0) FROM ledger_accounts WHERE kind = 'merchant'"))
    assert merchant_credits == 0


def test_the_openapi_spec_documents_honour_offers(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    assert "honour" in schemas["OfferCreate"]["properties"]["kind"]["enum"]
    assert "badge_code" in schemas["OfferCreate"]["properties"]
    assert schemas["OfferPublic"]["properties"]["merchant_id"]["nullable"] is True
    claim = spec["paths"]["/api/v1/offers/{offer_id}/claim"]["post"]
    assert claim["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/Claim")
    assert "honour_already_held" in claim["description"]
    honour = schemas["Claim"]["properties"]["honour"]["anyOf"]  # the badge, or null for a coupon
    assert honour[0]["$ref"].endswith("/HonourEarnedBadge") and honour[1]["nullable"] is True
    certificate = spec["paths"]["/api/v1/me/reports/{year}/certificate.png"]["get"]
    assert "RATELIMIT_CERTIFICATE" in certificate["description"]
