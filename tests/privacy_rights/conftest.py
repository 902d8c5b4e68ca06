"""A citizen with something in every corner of the account, made through the real HTTP path."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.behaviours.crediting import credit_batch
from app.notifications.service import record as record_notification
from tests.auth.conftest import Providers, providers, signin, signin_app  # noqa: F401  (fixtures)
from tests.partners.helpers import PartnerCreds, bind_through_api, metro_event, new_partner
from tests.rewards.factories import make_merchant
from tests.rewards.test_coupons_support import give_points, idem, make_offer


@dataclass
class Journey:
    citizen_id: int
    user: str  # the provider-side user (Suishenban and WeChat)
    phone: str
    account_ref: str
    bearer: dict[str, str]
    refresh_token: str
    coupon_id: int
    offer_id: int
    appeal_id: int


@pytest.fixture
def partner(db_session, starter_scenarios) -> PartnerCreds:
    creds = new_partner("metro")
    db_session.commit()
    return creds


def _ok(response: Any, status: int) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def make_journey(client: FlaskClient, providers: Providers, partner: PartnerCreds, db_session, *,  # noqa: F811
                 phone: str, account_ref: str) -> Journey:
    """Sign-in with a phone, consents, a linked WeChat, a partner binding and a credited trip, points,
    a claimed coupon, a notification and an appeal."""
    user = "pr-" + uuid.uuid4().hex[:10]
    signed_in = _ok(client.post("/api/v1/auth/suishenban",
                                json={"code": providers.mint("suishenban", user, phone=phone)}), 200)
    citizen_id = signed_in["citizen"]["id"]
    bearer = {"Authorization": f"Bearer {signed_in['access_token']}"}
    version = _ok(client.get("/api/v1/privacy-terms"), 200)["version"]
    _ok(client.post("/api/v1/me/consents", json={"kind": "privacy", "terms_version": version}, headers=bearer), 201)
    _ok(client.post("/api/v1/me/consents", json={"kind": "trajectory", "scenario_code": "metro_trip"},
                    headers=bearer), 201)
    _ok(client.post("/api/v1/me/identities/wechat", json={"code": providers.mint("wechat", user)},
                    headers=bearer), 201)
    assert bind_through_api(client, partner, citizen_id, account_ref).status_code == 201
    pushed = _ok(partner.push(client, [metro_event(f"trip-{user}", account_ref)]), 202)
    assert credit_batch(uuid.UUID(pushed["batch_id"])).get("credited") == 1
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=100)
    give_points(citizen_id, 500)
    record_notification(citizen_id, "points_expiring", {"points": 5}, f"test:{user}:1")
    db_session.commit()
    coupon = _ok(client.post(f"/api/v1/offers/{offer_id}/claim", headers={**bearer, **idem()}), 201)
    appeal = _ok(client.post("/api/v1/me/appeals", headers={**bearer, **idem()}, json={
        "scenario_code": "metro_trip", "occurred_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "partner_reference": f"ORDER-{user}", "description": "刷卡进站后没有记分"}), 201)
    return Journey(citizen_id, user, phone, account_ref, bearer, signed_in["refresh_token"], coupon["id"], offer_id,
                   appeal["id"])
