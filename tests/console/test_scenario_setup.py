"""A new behaviour without a deploy: a scenario on a filed methodology, tried, published, then credited."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.behaviours.crediting import credit_batch
from app.behaviours.models import InboundEvent
from tests.conftest import bearer_as, make_citizen
from tests.console.helpers import ebike_body, idem
from tests.partners.helpers import bind_through_api, metro_event, new_partner
from tests.rewards.factories import make_staff

REGISTRY = "/api/v1/staff/methodologies"
SCENARIOS = "/api/v1/staff/scenarios"


@pytest.fixture
def staff(db_session) -> dict[str, dict[str, str]]:
    people = {"op": "operator", "rev": "reviewer", "admin": "admin"}
    headers = {name: bearer_as(f"staff:{make_staff(role)}", role) for name, role in people.items()}
    db_session.commit()
    return headers


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _code(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]["code"]


def _filed(client: FlaskClient, staff: dict[str, dict[str, str]]) -> int:
    mid = _ok(client.post(f"{REGISTRY}/drafts", json=ebike_body(), headers=staff["op"]), 201)["id"]
    _ok(client.post(f"{REGISTRY}/{mid}/submit", headers=staff["op"]))
    _ok(client.post(f"{REGISTRY}/{mid}/review", json={"decision": "approve"}, headers=staff["rev"]))
    _ok(client.post(f"{REGISTRY}/{mid}/file", json={}, headers=staff["admin"]))
    return mid


def scenario_body(methodology_id: int, **changes: Any) -> dict[str, Any]:
    body = {
        "methodology_id": methodology_id, "code": "ebike_trip", "category": "行",
        "name": {"zh": "共享电单车出行", "en": "Shared e-bike trip"},
        "description": {"zh": "骑共享电单车代替开车。", "en": "Riding a shared e-bike instead of driving."},
        "points_per_gram": "1", "cap": {"unit": "events", "per_day": "10", "per_month": None},
        "data_sources": ["bikeshare"], "self_declared": False, "review_required": False,
        "effective_from": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
    }
    body.update(changes)
    return body


def test_set_up_try_and_publish_a_scenario_then_a_partners_event_is_credited(client: FlaskClient, staff,
                                                                             db_session) -> None:
    mid = _filed(client, staff)
    partner = new_partner("bikeshare")
    citizen = make_citizen()
    db_session.commit()
    assert bind_through_api(client, partner, citizen, "BIKE-0001").status_code == 201

    draft = _ok(client.post(SCENARIOS, json=scenario_body(mid), headers={**staff["op"], **idem()}), 201)
    assert draft["status"] == "draft" and draft["methodology"]["filing_number"].startswith("SHCI-M-")
    assert client.get("/api/v1/scenarios/ebike_trip").status_code == 404  # a draft is not listed
    early = partner.push(client, [metro_event(f"e-{uuid.uuid4().hex[:8]}", "BIKE-0001", scenario="ebike_trip",
                                              activity={"distance_km": "10"})]).get_json()
    assert early["accepted"] == 0  # nor accepted

    tried = _ok(client.post(f"{SCENARIOS}/{draft['id']}/trial", json={"activities": [{"distance_km": "10"}]},
                            headers=staff["rev"]))
    assert tried["results"][0]["grams"] == 615 and tried["results"][0]["trace"]["scenario"] == "ebike_trip"

    published = _ok(client.post(f"{SCENARIOS}/{draft['id']}/publish", headers=staff["op"]))
    assert published["status"] == "live"
    listed = _ok(client.get("/api/v1/scenarios/ebike_trip"))
    assert listed["methodology"]["filing_number"] == draft["methodology"]["filing_number"]
    pushed = partner.push(client, [metro_event("ride-1", "BIKE-0001", scenario="ebike_trip",
                                               activity={"distance_km": "10"})]).get_json()
    assert pushed["accepted"] == 1, pushed
    credit_batch(uuid.UUID(pushed["batch_id"]))
    event = db_session.scalars(select(InboundEvent).where(InboundEvent.external_id == "ride-1")).one()
    assert (event.status, event.grams, event.points) == ("credited", 615, 615)
    _code(client.post(f"{SCENARIOS}/{draft['id']}/publish", headers=staff["op"]), 409)


def test_only_a_filed_methodology_version_backs_a_new_scenario(client: FlaskClient, staff) -> None:
    draft_mid = _ok(client.post(f"{REGISTRY}/drafts", json=ebike_body("SHCI-P-DRAFTONLY"), headers=staff["op"]),
                    201)["id"]
    assert _code(client.post(SCENARIOS, json=scenario_body(draft_mid), headers=staff["op"]), 409) == \
        "methodology_not_usable"
    mid = _filed(client, staff)
    _ok(client.post(f"{REGISTRY}/{mid}/retire", json={"reason": "superseded"}, headers=staff["admin"]))
    assert _code(client.post(SCENARIOS, json=scenario_body(mid), headers=staff["op"]), 409) == \
        "methodology_not_usable"


def test_invalid_scenario_terms_are_refused_with_the_parsers_message(client: FlaskClient, staff) -> None:
    mid = _filed(client, staff)
    bad_cap = client.post(SCENARIOS, json=scenario_body(mid, cap={"unit": "weight_kg"}), headers=staff["op"])
    assert _code(bad_cap, 400) == "invalid_scenario" and "cap.unit" in bad_cap.get_json()["error"]["message"]
    nobody = client.post(SCENARIOS, json=scenario_body(mid, data_sources=[]), headers=staff["op"])
    assert _code(nobody, 400) == "invalid_scenario"
    assert _code(client.post(SCENARIOS, json=scenario_body(mid, code="Bad Code"), headers=staff["op"]), 400) == \
        "invalid_scenario"
    _ok(client.post(SCENARIOS, json=scenario_body(mid), headers=staff["op"]), 201)
    assert _code(client.post(SCENARIOS, json=scenario_body(mid), headers=staff["op"]), 409) == "scenario_code_taken"
