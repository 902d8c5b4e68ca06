"""Offers: operators and merchant admins publish, pause and edit them; citizens browse live ones."""
from __future__ import annotations

from datetime import timedelta

from app.audit.models import AuditEntry
from app.extensions import db
from app.models_base import utcnow
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.rewards.factories import make_merchant, make_merchant_staff, make_staff
from tests.rewards.test_coupons_support import give_points, idem, make_offer, offer_body


def _operator() -> dict[str, str]:
    return bearer_as(f"staff:{make_staff('operator')}", "operator")


def _merchant_admin(merchant_id: int) -> dict[str, str]:
    staff_id, _ = make_merchant_staff(merchant_id, role="merchant_admin")
    return bearer_as(f"merchant_staff:{staff_id}", "merchant_admin")


def test_an_operator_publishes_an_offer_and_citizens_see_it(client, db_session):
    merchant_id, _ = make_merchant()
    operator = _operator()

    created = client.post("/api/v1/merchant/offers", json=offer_body(merchant_id=merchant_id), headers=operator)
    assert created.status_code == 201, created.json
    offer = created.json
    assert (offer["status"], offer["merchant_id"], offer["remaining"], offer["created_by"][:6]) == (
        "draft", merchant_id, 50, "staff:")
    citizen = bearer_for(make_citizen())
    db_session.commit()
    assert client.get(f"/api/v1/offers/{offer['id']}", headers=citizen).status_code == 404  # a draft is hidden

    published = client.patch(f"/api/v1/merchant/offers/{offer['id']}", json={"status": "live"}, headers=operator)
    assert published.status_code == 200 and published.json["status"] == "live"

    seen = client.get("/api/v1/offers", headers=citizen)
    assert [o["id"] for o in seen.json["items"]] == [offer["id"]]
    assert seen.json["items"][0]["claimable"] is True
    assert seen.json["items"][0]["merchant_name_en"] == "Green Café"
    assert "points_budget" not in seen.json["items"][0]
    actions = db.session.scalars(db.select(AuditEntry.action).where(AuditEntry.object_id == str(offer["id"]))).all()
    assert set(actions) == {"offer.created", "offer.updated"}


def test_a_merchant_admin_publishes_only_for_their_own_merchant(client, db_session):
    merchant_id, _ = make_merchant()
    other_id, _ = make_merchant(name_en="Other")
    admin = _merchant_admin(merchant_id)
    theirs = make_offer(other_id)
    db_session.commit()

    own = client.post("/api/v1/merchant/offers", json=offer_body(), headers=admin)
    assert own.status_code == 201 and own.json["merchant_id"] == merchant_id

    foreign = client.post("/api/v1/merchant/offers", json=offer_body(merchant_id=other_id), headers=admin)
    assert (foreign.status_code, foreign.json["error"]["code"]) == (403, "wrong_merchant")

    assert client.get(f"/api/v1/merchant/offers/{theirs}", headers=admin).json["error"]["code"] == "offer_not_found"
    patched = client.patch(f"/api/v1/merchant/offers/{theirs}", json={"status": "paused"}, headers=admin)
    assert (patched.status_code, patched.json["error"]["code"]) == (404, "offer_not_found")
    listed = client.get("/api/v1/merchant/offers", headers=admin).json["items"]
    assert [o["id"] for o in listed] == [own.json["id"]]


def test_who_may_publish(client, db_session):
    merchant_id, _ = make_merchant()
    staff_id, _ = make_merchant_staff(merchant_id, role="merchant_staff")
    cashier = bearer_as(f"merchant_staff:{staff_id}", "merchant_staff")
    reviewer = bearer_as(f"staff:{make_staff('reviewer')}", "reviewer")
    citizen = bearer_for(make_citizen())
    db_session.commit()

    for headers, status in ((cashier, 403), (reviewer, 403), (citizen, 403), ({}, 401)):
        response = client.post("/api/v1/merchant/offers", json=offer_body(merchant_id=merchant_id), headers=headers)
        assert response.status_code == status

    operator = _operator()
    db_session.commit()
    missing = client.post("/api/v1/merchant/offers", json=offer_body(), headers=operator)
    assert (missing.status_code, missing.json["error"]["code"]) == (400, "merchant_required")
    unknown = client.post("/api/v1/merchant/offers", json=offer_body(merchant_id=10**9), headers=operator)
    assert (unknown.status_code, unknown.json["error"]["code"]) == (404, "merchant_not_found")


def test_offer_validation(client, db_session):
    merchant_id, _ = make_merchant()
    operator = _operator()
    now = utcnow()
    db_session.commit()

    def create(**overrides):
        return client.post("/api/v1/merchant/offers", json=offer_body(merchant_id=merchant_id, **overrides),
                           headers=operator)

    both = create(use_ends_at=(now + timedelta(days=60)).isoformat())
    assert (both.status_code, both.json["error"]["code"]) == (400, "invalid_use_window")
    backwards = create(claim_starts_at=(now + timedelta(days=2)).isoformat(),
                       claim_ends_at=(now + timedelta(days=1)).isoformat())
    assert (backwards.status_code, backwards.json["error"]["code"]) == (400, "invalid_claim_window")
    for bad in ({"points_price": 0}, {"category": "玩"}, {"districts": ["atlantis"]}, {"owner": "me"},
                {"per_citizen_limit": 0}, {"claim_starts_at": "2026-01-01T00:00:00"}):
        response = create(**bad)
        assert (response.status_code, response.json["error"]["code"]) == (400, "validation_error"), bad
    budget = create(points_budget=50)
    assert budget.json["error"]["code"] == "invalid_budget"
    fixed = create(valid_days=None, use_ends_at=(now + timedelta(days=60)).isoformat(), districts=["xuhui", "xuhui"])
    assert fixed.status_code == 201 and fixed.json["districts"] == ["xuhui"] and fixed.json["valid_days"] is None


def test_a_published_offer_keeps_its_price_and_moves_only_along_the_status_path(client, db_session):
    merchant_id, _ = make_merchant()
    operator = _operator()
    db_session.commit()
    draft = client.post("/api/v1/merchant/offers", json=offer_body(merchant_id=merchant_id), headers=operator).json
    url = f"/api/v1/merchant/offers/{draft['id']}"

    assert client.patch(url, json={"points_price": 80}, headers=operator).json["points_price"] == 80  # a draft
    assert client.patch(url, json={"status": "paused"}, headers=operator).json["error"]["code"] == \
        "invalid_status_change"
    client.patch(url, json={"status": "live"}, headers=operator)
    refused = client.patch(url, json={"points_price": 10}, headers=operator)
    assert (refused.status_code, refused.json["error"]["code"]) == (409, "offer_published")
    retitled = client.patch(url, json={"title_en": "5 yuan off any coffee"}, headers=operator)
    assert retitled.status_code == 200 and retitled.json["title_en"] == "5 yuan off any coffee"
    assert client.patch(url, json={"status": "draft"}, headers=operator).status_code == 409


def test_pausing_stops_claims_at_once_and_resuming_restores_them(client, db_session):
    merchant_id, _ = make_merchant()
    admin = _merchant_admin(merchant_id)
    offer_id = make_offer(merchant_id)
    citizen_id = make_citizen()
    give_points(citizen_id, 500)
    citizen = bearer_for(citizen_id)
    db_session.commit()

    assert client.patch(f"/api/v1/merchant/offers/{offer_id}", json={"status": "paused"}, headers=admin).status_code \
        == 200
    claim = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**citizen, **idem()})
    assert (claim.status_code, claim.json["error"]["code"]) == (409, "offer_not_available")
    assert client.get("/api/v1/offers", headers=citizen).json["items"] == []

    client.patch(f"/api/v1/merchant/offers/{offer_id}", json={"status": "live"}, headers=admin)
    assert client.post(f"/api/v1/offers/{offer_id}/claim", headers={**citizen, **idem()}).status_code == 201


def test_browsing_ranks_rural_revitalisation_first_filters_and_pages(client, db_session):
    merchant_id, _ = make_merchant()
    other_id, _ = make_merchant(name_en="Farm Shop")
    now = utcnow()
    plain = [make_offer(merchant_id, category="食") for _ in range(3)]
    rural = make_offer(other_id, rural_revitalisation=True, points_price=40, category="用", districts=["chongming"])
    xuhui_only = make_offer(merchant_id, category="行", districts=["xuhui"])
    make_offer(merchant_id, status="draft")
    make_offer(merchant_id, status="paused")
    make_offer(merchant_id, claim_starts_at=now + timedelta(days=1))  # not yet
    make_offer(merchant_id, claim_starts_at=now - timedelta(days=9), claim_ends_at=now - timedelta(days=1))  # over
    citizen = bearer_for(make_citizen())
    db_session.commit()

    first = client.get("/api/v1/offers?limit=2", headers=citizen).json
    assert [o["id"] for o in first["items"]] == [rural, xuhui_only]
    second = client.get(f"/api/v1/offers?limit=2&cursor={first['next_cursor']}", headers=citizen).json
    third = client.get(f"/api/v1/offers?limit=2&cursor={second['next_cursor']}", headers=citizen).json
    assert [o["id"] for o in second["items"] + third["items"]] == sorted(plain, reverse=True)
    assert third["next_cursor"] is None

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/v1/offers?{query}", headers=citizen)
        assert response.status_code == 200, response.json
        return [o["id"] for o in response.json["items"]]

    assert ids("category=行") == [xuhui_only]
    assert ids("district=xuhui") == [rural, xuhui_only, *sorted(plain, reverse=True)][1:]  # citywide + xuhui
    assert ids("district=chongming") == [rural, *sorted(plain, reverse=True)]
    assert ids(f"merchant={other_id}") == [rural]
    for bad in ("district=atlantis", "category=x", "cursor=!!", "limit=101", "colour=red"):
        assert client.get(f"/api/v1/offers?{bad}", headers=citizen).status_code == 400, bad
    assert client.get("/api/v1/offers").status_code == 401
    single = client.get(f"/api/v1/offers/{rural}", headers=citizen).json
    assert (single["points_price"], single["rural_revitalisation"], single["districts"]) == (40, True, ["chongming"])
