"""Operators run campaigns through the API (role-checked, audited); anyone sees the live ones."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from rewards.campaigns.models import Campaign
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.rewards.factories import make_staff

STAFF = "/api/v1/staff/campaigns"
PUBLIC = "/api/v1/campaigns"
NOW = datetime.now(UTC).replace(microsecond=0)


def body(**changes: Any) -> dict[str, Any]:
    """全国低碳日: double points on metro and bus trips in Xuhui and Huangpu, for a day."""
    data: dict[str, Any] = {
        "code": "low-carbon-day",
        "title": {"zh": "全国低碳日 双倍积分", "en": "National Low-Carbon Day: double points"},
        "starts_at": (NOW + timedelta(days=1)).isoformat(),
        "ends_at": (NOW + timedelta(days=2)).isoformat(),
        "scenario_codes": ["metro_trip", "bus_trip"],
        "districts": ["xuhui", "huangpu"],
        "multiplier": "2",
        "budget_points": 100_000,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not ...}


@pytest.fixture
def operator(db_session, starter_scenarios) -> dict[str, str]:
    staff_id = make_staff("operator")
    db_session.commit()
    return bearer_as(f"staff:{staff_id}", "operator")


def error_code(response: Any) -> str:
    return response.get_json()["error"]["code"]


def create(client: Any, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    response = client.post(STAFF, json=body(**changes), headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# ---- create ------------------------------------------------------------------------------------

def test_an_operator_creates_a_draft_campaign_and_it_is_audited(client, operator):
    created = create(client, operator)

    assert created["code"] == "low-carbon-day"
    assert created["status"] == "draft"
    assert created["multiplier"] == "2.00"
    assert created["bonus_points"] == 0
    assert (created["budget_points"], created["used_points"], created["remaining_points"]) == (100_000, 0, 100_000)
    assert created["scenario_codes"] == ["bus_trip", "metro_trip"]  # sorted, unique
    assert created["districts"] == ["huangpu", "xuhui"]
    assert created["created_by"].startswith("staff:")
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "campaign.created")).one()
    assert (entry.actor_type, entry.object_type, entry.object_id) == ("staff", "campaign", str(created["id"]))
    assert entry.actor_id == created["created_by"].partition(":")[2]
    assert entry.details["multiplier"] == "2.00"


def test_every_scenario_and_district_by_default_and_live_at_once(client, operator):
    created = create(client, operator, scenario_codes=..., districts=..., multiplier=..., bonus_points=20,
                     status="live")
    assert (created["scenario_codes"], created["districts"]) == (None, None)
    assert (created["multiplier"], created["bonus_points"], created["status"]) == ("1.00", 20, "live")


def test_a_code_in_use_is_a_conflict(client, operator):
    create(client, operator)
    response = client.post(STAFF, json=body(), headers=operator)
    assert response.status_code == 409
    assert error_code(response) == "campaign_code_taken"
    assert db.session.scalar(select(db.func.count()).select_from(Campaign)) == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"ends_at": (NOW + timedelta(hours=12)).isoformat()},  # before starts_at
        {"multiplier": "10.5"},
        {"multiplier": "0.5"},
        {"multiplier": "1", "bonus_points": 0},  # gives nothing
        {"multiplier": ..., "bonus_points": ...},
        {"bonus_points": -1},
        {"budget_points": 0},
        {"budget_points": "100"},  # integers are strict
        {"districts": ["atlantis"]},
        {"districts": []},
        {"scenario_codes": ["Metro Trip!"]},
        {"code": "Bad Code"},
        {"starts_at": "2026-06-15T00:00:00"},  # no offset
        {"title": {"zh": "只有中文"}},
        {"budget_points": ...},
        {"surprise": 1},
    ],
)
def test_invalid_campaigns_are_refused_with_400(client, operator, changes):
    response = client.post(STAFF, json=body(**changes), headers=operator)
    assert response.status_code == 400, response.get_json()
    assert error_code(response) == "validation_error"


def test_an_unknown_scenario_is_422(client, operator):
    response = client.post(STAFF, json=body(scenario_codes=["metro_trip", "teleport"]), headers=operator)
    assert response.status_code == 422
    assert error_code(response) == "unknown_scenario"
    assert "teleport" in response.get_json()["error"]["message"]


def test_going_live_after_the_window_is_over_is_refused(client, operator):
    response = client.post(
        STAFF,
        json=body(starts_at=(NOW - timedelta(days=3)).isoformat(), ends_at=(NOW - timedelta(days=2)).isoformat(),
                  status="live"),
        headers=operator,
    )
    assert response.status_code == 409
    assert error_code(response) == "campaign_over"


# ---- roles -------------------------------------------------------------------------------------

def test_without_a_token_401(client, db_session):
    assert client.post(STAFF, json=body()).status_code == 401
    assert client.get(STAFF).status_code == 401
    assert client.patch(f"{STAFF}/1", json={"status": "paused"}).status_code == 401


def test_a_citizen_a_reviewer_and_merchant_staff_are_refused_403(client, db_session, starter_scenarios):
    citizen = bearer_for(make_citizen())
    reviewer = bearer_as(f"staff:{make_staff('reviewer')}", "reviewer")
    db_session.commit()
    for headers in (citizen, reviewer, bearer_as("merchant_staff:1", "merchant_admin")):
        for response in (
            client.post(STAFF, json=body(), headers=headers),
            client.get(STAFF, headers=headers),
            client.get(f"{STAFF}/1", headers=headers),
            client.patch(f"{STAFF}/1", json={"status": "paused"}, headers=headers),
        ):
            assert response.status_code == 403, response.get_json()
            assert error_code(response) == "forbidden"


def test_an_admin_may_and_a_suspended_operator_may_not(client, db_session, starter_scenarios):
    admin = bearer_as(f"staff:{make_staff('admin')}", "admin")
    suspended = bearer_as(f"staff:{make_staff('operator', status='suspended')}", "operator")
    db_session.commit()
    assert client.post(STAFF, json=body(), headers=admin).status_code == 201
    response = client.get(STAFF, headers=suspended)
    assert response.status_code == 401


# ---- read --------------------------------------------------------------------------------------

def test_get_one_and_404(client, operator):
    created = create(client, operator)
    assert client.get(f"{STAFF}/{created['id']}", headers=operator).get_json() == created
    response = client.get(f"{STAFF}/{created['id'] + 1000}", headers=operator)
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_the_operator_list_is_newest_first_cursor_paginated_and_filters_by_status(client, operator):
    ids = [create(client, operator, code=f"c-{i}", status="live" if i % 2 else "draft")["id"] for i in range(5)]

    first = client.get(f"{STAFF}?limit=2", headers=operator).get_json()
    second = client.get(f"{STAFF}?limit=2&cursor={first['next_cursor']}", headers=operator).get_json()
    third = client.get(f"{STAFF}?limit=2&cursor={second['next_cursor']}", headers=operator).get_json()
    assert [c["id"] for page in (first, second, third) for c in page["items"]] == ids[::-1]
    assert third["next_cursor"] is None
    live = client.get(f"{STAFF}?status=live", headers=operator).get_json()
    assert [c["id"] for c in live["items"]] == [ids[3], ids[1]]
    assert client.get(f"{STAFF}?status=gone", headers=operator).status_code == 400
    response = client.get(f"{STAFF}?cursor=not-a-cursor", headers=operator)
    assert (response.status_code, error_code(response)) == (400, "invalid_cursor")


def test_citizens_see_live_campaigns_not_over_soonest_first_without_budgets(client, operator):
    later = create(client, operator, code="env-day", status="live",
                   starts_at=(NOW + timedelta(days=5)).isoformat(), ends_at=(NOW + timedelta(days=6)).isoformat())
    running = create(client, operator, code="running", status="live",
                     starts_at=(NOW - timedelta(hours=1)).isoformat(), ends_at=(NOW + timedelta(hours=1)).isoformat())
    create(client, operator, code="draft-one")
    paused = create(client, operator, code="paused-one", status="live")
    client.patch(f"{STAFF}/{paused['id']}", json={"status": "paused"}, headers=operator)
    over = db.session.get(Campaign, create(client, operator, code="over", status="live")["id"])
    over.starts_at, over.ends_at = NOW - timedelta(days=2), NOW - timedelta(days=1)
    db.session.commit()

    first = client.get(f"{PUBLIC}?limit=1")
    assert first.status_code == 200
    page = first.get_json()
    rest = client.get(f"{PUBLIC}?limit=5&cursor={page['next_cursor']}").get_json()
    items = page["items"] + rest["items"]
    assert [c["code"] for c in items] == [running["code"], later["code"]]
    assert rest["next_cursor"] is None
    assert set(items[0]) == {"code", "title", "starts_at", "ends_at", "scenario_codes", "districts", "multiplier",
                             "bonus_points"}
    assert client.get(f"{PUBLIC}?status=live").status_code == 400  # unknown query keys are refused


# ---- change ------------------------------------------------------------------------------------

def test_pause_resume_and_end_at_once_and_audited(client, operator):
    campaign = create(client, operator, status="live")
    url = f"{STAFF}/{campaign['id']}"

    paused = client.patch(url, json={"status": "paused"}, headers=operator)
    assert paused.status_code == 200 and paused.get_json()["status"] == "paused"
    assert db.session.get(Campaign, campaign["id"]).status == "paused"
    assert client.patch(url, json={"status": "live"}, headers=operator).get_json()["status"] == "live"
    assert client.patch(url, json={"status": "ended"}, headers=operator).get_json()["status"] == "ended"

    response = client.patch(url, json={"status": "live"}, headers=operator)
    assert (response.status_code, error_code(response)) == (409, "invalid_status_transition")
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "campaign.updated").order_by(AuditEntry.id)
    ).all()
    assert [(e.details["before"]["status"], e.details["after"]["status"]) for e in entries] == [
        ("live", "paused"), ("paused", "live"), ("live", "ended"),
    ]


def test_a_draft_cannot_be_paused(client, operator):
    campaign = create(client, operator)
    response = client.patch(f"{STAFF}/{campaign['id']}", json={"status": "paused"}, headers=operator)
    assert (response.status_code, error_code(response)) == (409, "invalid_status_transition")


def test_terms_change_only_while_draft(client, operator):
    campaign = create(client, operator)
    url = f"{STAFF}/{campaign['id']}"
    changed = client.patch(url, json={"multiplier": "3", "districts": None, "bonus_points": 5}, headers=operator)
    assert changed.status_code == 200
    assert (changed.get_json()["multiplier"], changed.get_json()["districts"]) == ("3.00", None)

    client.patch(url, json={"status": "live"}, headers=operator)
    response = client.patch(url, json={"multiplier": "5"}, headers=operator)
    assert (response.status_code, error_code(response)) == (409, "campaign_not_editable")
    retitled = client.patch(url, json={"title": {"zh": "世界环境日", "en": "World Environment Day"},
                                       "budget_points": 200_000}, headers=operator)
    assert retitled.status_code == 200
    assert (retitled.get_json()["title"]["zh"], retitled.get_json()["budget_points"]) == ("世界环境日", 200_000)


def test_a_patch_cannot_break_the_terms(client, operator):
    campaign = create(client, operator)
    url = f"{STAFF}/{campaign['id']}"
    response = client.patch(url, json={"ends_at": (NOW - timedelta(days=5)).isoformat()}, headers=operator)
    assert (response.status_code, error_code(response)) == (422, "invalid_window")
    response = client.patch(url, json={"multiplier": "1"}, headers=operator)
    assert (response.status_code, error_code(response)) == (422, "campaign_gives_nothing")
    response = client.patch(url, json={"scenario_codes": ["teleport"]}, headers=operator)
    assert (response.status_code, error_code(response)) == (422, "unknown_scenario")
    assert client.patch(url, json={}, headers=operator).status_code == 400
    assert client.patch(url, json={"code": "renamed"}, headers=operator).status_code == 400
    assert db.session.get(Campaign, campaign["id"]).multiplier == 2


def test_the_budget_cannot_go_below_what_is_used(client, operator):
    campaign = create(client, operator, status="live")
    row = db.session.get(Campaign, campaign["id"])
    row.used_points = 600
    db.session.commit()
    url = f"{STAFF}/{campaign['id']}"
    response = client.patch(url, json={"budget_points": 599}, headers=operator)
    assert (response.status_code, error_code(response)) == (409, "budget_below_used")
    assert client.patch(url, json={"budget_points": 600}, headers=operator).get_json()["remaining_points"] == 0


def test_patch_of_an_unknown_campaign_is_404(client, operator):
    response = client.patch(f"{STAFF}/999999", json={"status": "paused"}, headers=operator)
    assert (response.status_code, error_code(response)) == (404, "not_found")
