"""Coupon claims and cancellations are audited (app/audit): who, which offer and coupon, how many
points; ids only, never personal data. Also: the yearly certificate (drawn with Pillow) is rate limited."""
from __future__ import annotations

from sqlalchemy import select

from app.audit.models import AuditEntry
from app.audit.service import verify_chain
from app.extensions import db
from rewards.honours.service import load_definitions
from tests.conftest import bearer_for, make_citizen
from tests.rewards.factories import make_merchant
from tests.rewards.test_coupons_support import give_points, idem, make_offer


def _audits(action: str) -> list[tuple[str | None, str | None, str | None, dict]]:
    return [tuple(row) for row in db.session.execute(
        select(AuditEntry.actor_type, AuditEntry.actor_id, AuditEntry.object_id, AuditEntry.details)
        .where(AuditEntry.action == action).order_by(AuditEntry.id))]


def test_a_claim_and_its_cancellation_are_audited(client, db_session):
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=120)
    citizen_id = make_citizen()
    give_points(citizen_id, 1000)
    headers = bearer_for(citizen_id)
    db_session.commit()

    coupon = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem("audited")}).json
    replay = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem("audited")})
    cancelled = client.post(f"/api/v1/me/coupons/{coupon['id']}/cancel", headers=headers)

    assert replay.status_code == 201 and cancelled.status_code == 200
    assert _audits("offer.claimed") == [  # once: a replay changes nothing, so records nothing
        ("citizen", str(citizen_id), str(coupon["id"]),
         {"offer_id": offer_id, "kind": "coupon", "points": 120, "merchant_id": merchant_id})]
    assert _audits("coupon.cancelled") == [
        ("citizen", str(citizen_id), str(coupon["id"]), {"offer_id": offer_id, "points": 120})]
    assert verify_chain() is None


def test_a_refused_claim_or_cancellation_leaves_no_audit_row(client, db_session):
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=120)
    citizen_id = make_citizen()  # no points
    headers = bearer_for(citizen_id)
    db_session.commit()

    refused = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**headers, **idem()})
    unknown = client.post("/api/v1/me/coupons/999999/cancel", headers=headers)

    assert (refused.status_code, unknown.status_code) == (409, 404)
    assert _audits("offer.claimed") == [] and _audits("coupon.cancelled") == []


def test_the_certificate_is_rate_limited_per_citizen(app, client, db_session, monkeypatch):
    load_definitions()
    citizens = [make_citizen() for _ in range(2)]
    headers = [bearer_for(c) for c in citizens]
    db_session.commit()
    monkeypatch.setitem(app.config, "RATELIMIT_CERTIFICATE", "2 per minute")  # read on every request
    url = "/api/v1/me/reports/2026/certificate.png"

    first = [client.get(url, headers=headers[0]).status_code for _ in range(2)]
    limited = client.get(url, headers=headers[0])
    other = client.get(url, headers=headers[1])

    assert first == [200, 200]
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert limited.get_json()["error"]["message_zh"]
    assert limited.headers.get("Retry-After")
    assert other.status_code == 200  # another citizen has an allowance of their own
