"""The methodology registry through its API, on real PostgreSQL: draft → review → file, versions, refusals."""
from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit.models import AuditEntry
from scenarios.models import Methodology
from tests.conftest import bearer_as
from tests.console.helpers import ebike_body, idem
from tests.rewards.factories import make_staff

BASE = "/api/v1/staff/methodologies"


@pytest.fixture
def staff(db_session) -> dict[str, dict[str, str]]:
    """Two operators, two reviewers and an admin, with their bearer headers."""
    people = {name: (make_staff(role), role) for name, role in (
        ("op", "operator"), ("op2", "operator"), ("rev", "reviewer"), ("rev2", "reviewer"), ("admin", "admin"))}
    headers = {name: bearer_as(f"staff:{staff_id}", role) for name, (staff_id, role) in people.items()}
    db_session.commit()
    return headers


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"] and error["message_zh"]
    return error


def _draft(client: FlaskClient, headers: dict[str, str], body: dict[str, Any] | None = None) -> dict[str, Any]:
    return _ok(client.post(f"{BASE}/drafts", json=body or ebike_body(), headers={**headers, **idem()}), 201)


def _through_filing(client: FlaskClient, staff: dict[str, dict[str, str]], methodology_id: int) -> dict[str, Any]:
    _ok(client.post(f"{BASE}/{methodology_id}/submit", headers=staff["op"]))
    _ok(client.post(f"{BASE}/{methodology_id}/review", json={"decision": "approve"}, headers=staff["rev"]))
    return _ok(client.post(f"{BASE}/{methodology_id}/file", json={}, headers=staff["admin"]))


def test_draft_review_and_file_with_the_full_history(client: FlaskClient, staff, db_session) -> None:
    drafted = _draft(client, staff["op"])
    assert drafted["status"] == "draft" and drafted["version"] == 1 and drafted["filing_number"] is None
    assert drafted["parameters"][0]["value"] == "61.5" and drafted["co_benefits"]["nox"]["value"] == "0.021"
    assert drafted["usable_for_new_scenarios"] is False
    mid = drafted["id"]

    edited = _ok(client.put(f"{BASE}/{mid}/draft", json=ebike_body(formula="distance_km * net_g_per_km * 1"),
                            headers=staff["op2"]))
    assert edited["formula"] == "distance_km * net_g_per_km * 1"
    _ok(client.post(f"{BASE}/{mid}/submit", headers=staff["op"]))
    commented = _ok(client.post(f"{BASE}/{mid}/review", json={"decision": "comment", "comment": "来源页码？"},
                                headers=staff["rev"]))
    assert commented["status"] == "submitted"
    returned = _ok(client.post(f"{BASE}/{mid}/review", json={"decision": "request_changes", "comment": "补充页码"},
                               headers=staff["rev"]))
    assert returned["status"] == "returned"
    fixed = ebike_body(parameters=[{"name": "net_g_per_km", "unit": "gCO2e/km", "value": "61.5",
                                    "source": "Operator survey 2026, table 3, p. 14"}])
    _ok(client.put(f"{BASE}/{mid}/draft", json=fixed, headers=staff["op"]))
    _ok(client.post(f"{BASE}/{mid}/submit", headers=staff["op"]))
    approved = _ok(client.post(f"{BASE}/{mid}/review", json={"decision": "approve"}, headers=staff["rev2"]))
    assert approved["status"] == "approved"
    filed = _ok(client.post(f"{BASE}/{mid}/file", json={"comment": "备案"}, headers=staff["admin"]))
    assert filed["status"] == "filed" and filed["usable_for_new_scenarios"] is True
    assert filed["filing_number"].startswith("SHCI-M-") and filed["filing_number"].endswith("-001")
    assert [step["action"] for step in filed["history"]] == [
        "drafted", "edited", "submitted", "commented", "changes_requested", "edited", "submitted", "approved",
        "filed"]
    assert filed["history"][3]["comment"] == "来源页码？"
    audited = db_session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "methodology",
                                                                 AuditEntry.object_id == str(mid))).all()
    assert len(audited) == 9 and "methodology.filed" in audited

    listed = _ok(client.get(BASE, query_string={"status": "filed", "limit": 1}, headers=staff["rev"]))
    assert [item["id"] for item in listed["items"]] == [mid]


def test_nobody_reviews_their_own_work(client: FlaskClient, staff, db_session) -> None:
    """An admin who drafted (admins pass the operator role) may not approve it, nor may one who edited it."""
    mid = _draft(client, staff["admin"])["id"]
    _ok(client.post(f"{BASE}/{mid}/submit", headers=staff["admin"]))
    _error(client.post(f"{BASE}/{mid}/review", json={"decision": "approve"}, headers=staff["admin"]),
           403, "own_methodology")
    _ok(client.post(f"{BASE}/{mid}/review", json={"decision": "approve"}, headers=staff["rev"]))


def test_invalid_formulas_and_parameters_are_refused_with_the_engines_message(client: FlaskClient, staff) -> None:
    unknown = _error(client.post(f"{BASE}/drafts", json=ebike_body(formula="distance_km * missing_factor"),
                                 headers=staff["op"]), 400, "invalid_methodology")
    assert "missing_factor" in unknown["message"]
    no_source = ebike_body(parameters=[{"name": "net_g_per_km", "unit": "g/km", "value": "61.5"}])
    error = _error(client.post(f"{BASE}/drafts", json=no_source, headers=staff["op"]), 400, "invalid_methodology")
    assert "source" in error["message"]
    not_a_number = ebike_body(parameters=[{"name": "net_g_per_km", "unit": "g/km", "value": "lots", "source": "x"}])
    _error(client.post(f"{BASE}/drafts", json=not_a_number, headers=staff["op"]), 400, "invalid_methodology")
    huge = ebike_body(parameters=[{"name": "net_g_per_km", "unit": "g/km", "value": "1e999999", "source": "x"}])
    _error(client.post(f"{BASE}/drafts", json=huge, headers=staff["op"]), 400, "validation_error")
    _error(client.post(f"{BASE}/drafts", json=ebike_body(formula="__import__('os')"), headers=staff["op"]),
           400, "invalid_methodology")
    bad_co_benefit = ebike_body(co_benefits={"nox": {"value": "-1", "unit": "g/km", "source": "x"}})
    _error(client.post(f"{BASE}/drafts", json=bad_co_benefit, headers=staff["op"]), 400, "validation_error")


def test_workflow_order_is_enforced(client: FlaskClient, staff) -> None:
    mid = _draft(client, staff["op"])["id"]
    _error(client.post(f"{BASE}/{mid}/review", json={"decision": "approve"}, headers=staff["rev"]),
           409, "methodology_wrong_status")
    _error(client.post(f"{BASE}/{mid}/file", json={}, headers=staff["admin"]), 409, "methodology_wrong_status")
    _ok(client.post(f"{BASE}/{mid}/submit", headers=staff["op"]))
    _error(client.put(f"{BASE}/{mid}/draft", json=ebike_body(), headers=staff["op"]), 409,
           "methodology_wrong_status")
    _error(client.post(f"{BASE}/{mid}/review", json={"decision": "request_changes"}, headers=staff["rev"]),
           400, "comment_required")
    _error(client.post(f"{BASE}/drafts", json=ebike_body(), headers=staff["op2"]), 409, "methodology_code_taken")


def test_a_change_after_filing_is_a_new_version_and_retiring_keeps_history(client: FlaskClient, staff) -> None:
    first = _draft(client, staff["op"])
    filed = _through_filing(client, staff, first["id"])
    _error(client.put(f"{BASE}/{first['id']}/draft", json=ebike_body(), headers=staff["op"]), 409,
           "methodology_wrong_status")
    second = _ok(client.post(f"{BASE}/{first['id']}/revise", headers={**staff["op"], **idem()}), 201)
    assert second["version"] == 2 and second["status"] == "draft" and second["filing_number"] is None
    assert second["parameters"] == filed["parameters"]
    _error(client.post(f"{BASE}/{first['id']}/revise", headers=staff["op"]), 409, "methodology_open_version_exists")
    changed = ebike_body(parameters=[{"name": "net_g_per_km", "unit": "gCO2e/km", "value": "58",
                                      "source": "Operator survey 2027"}])
    _ok(client.put(f"{BASE}/{second['id']}/draft", json=changed, headers=staff["op"]))
    refiled = _through_filing(client, staff, second["id"])
    assert refiled["filing_number"].endswith("-002") and refiled["parameters"][0]["value"] == "58"
    retired = _ok(client.post(f"{BASE}/{first['id']}/retire", json={"reason": "superseded by v2"},
                              headers=staff["admin"]))
    assert retired["status"] == "retired" and retired["usable_for_new_scenarios"] is False
    assert retired["filing_number"] == filed["filing_number"] and retired["parameters"] == filed["parameters"]
    assert [(v["version"], v["status"]) for v in retired["versions"]] == [(1, "retired"), (2, "filed")]


def test_a_seed_methodology_can_be_revised_and_seeds_still_credit(client: FlaskClient, staff, starter_scenarios,
                                                                  db_session) -> None:
    seed = db_session.scalars(select(Methodology).where(Methodology.code == "SHCI-P-METRO")).one()
    assert seed.status == "provisional"
    revised = _ok(client.post(f"{BASE}/{seed.id}/revise", headers=staff["op"]), 201)
    assert revised["version"] == seed.version + 1 and revised["formula"] == seed.definition["formula"]
    from scenarios.service import spec_for

    spec = spec_for(starter_scenarios["metro_trip"])  # the seed's scenario still builds its engine spec
    assert spec.methodology_version == seed.version


def test_roles_on_the_registry(client: FlaskClient, staff) -> None:
    _error(client.post(f"{BASE}/drafts", json=ebike_body(), headers=staff["rev"]), 403, "forbidden")
    mid = _draft(client, staff["op"])["id"]
    _ok(client.post(f"{BASE}/{mid}/submit", headers=staff["op"]))
    _error(client.post(f"{BASE}/{mid}/review", json={"decision": "approve"}, headers=staff["op2"]), 403, "forbidden")
    _ok(client.post(f"{BASE}/{mid}/review", json={"decision": "approve"}, headers=staff["rev"]))
    _error(client.post(f"{BASE}/{mid}/file", json={}, headers=staff["rev"]), 403, "forbidden")
    assert _ok(client.get(f"{BASE}/{mid}", headers=staff["rev2"]))["status"] == "approved"


def test_a_retried_submit_replays_its_answer(client: FlaskClient, staff) -> None:
    mid = _draft(client, staff["op"])["id"]
    key = idem()
    first = _ok(client.post(f"{BASE}/{mid}/submit", headers={**staff["op"], **key}))
    again = _ok(client.post(f"{BASE}/{mid}/submit", headers={**staff["op"], **key}))
    assert again == first


def test_the_trial_calculator_uses_the_same_calculate_as_crediting(client: FlaskClient, staff, starter_scenarios,
                                                                   db_session) -> None:
    from scenarios.engine import calculate
    from scenarios.service import spec_for

    seed = db_session.scalars(select(Methodology).where(Methodology.code == "SHCI-P-METRO")).one()
    tried = _ok(client.post(f"{BASE}/{seed.id}/trial", json={"activities": [{"distance_km": "12.5"}]},
                            headers=staff["rev"]))
    credited = calculate(spec_for(starter_scenarios["metro_trip"]), {"distance_km": "12.5"})
    result = tried["results"][0]
    assert result["grams"] == credited.grams == 980 and result["exact"] == format(credited.exact, "f")
    assert result["trace"]["parameters"] == credited.trace["parameters"]
    assert result["trace"]["formula"] == credited.trace["formula"] and result["points"] == 980


def test_the_trial_applies_a_fractional_rate_to_the_days_total_and_explains_rejections(client: FlaskClient,
                                                                                      staff) -> None:
    mid = _draft(client, staff["op"])["id"]  # drafts can be tried too, before review
    samples = [{"distance_km": "0.1"}] * 4 + [{"distance_km": "500"}, {}]
    tried = _ok(client.post(f"{BASE}/{mid}/trial", json={"points_per_gram": "0.1", "activities": samples},
                            headers=staff["op"]))
    assert [item.get("grams") for item in tried["results"][:4]] == [6, 6, 6, 6]  # 0.1 km × 61.5 g = 6.15 → 6
    assert [item["points"] for item in tried["results"][:4]] == [0, 1, 0, 1]
    assert tried["total_grams"] == 24 and tried["total_points"] == 2
    assert tried["results"][4]["error"]["field"] == "distance_km"
    assert tried["results"][5]["error"]["field"] == "distance_km"
    _error(client.post(f"{BASE}/{mid}/trial", json={"activities": [{}] * 51}, headers=staff["op"]), 400,
           "validation_error")
    _error(client.post(f"{BASE}/{mid}/trial", json={"points_per_gram": "0", "activities": [{}]},
                       headers=staff["op"]), 400, "validation_error")
