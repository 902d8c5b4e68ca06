"""Consents (PIPL): privacy terms first, a separate consent per trajectory scenario, withdrawal."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.accounts import service
from app.accounts.models import Consent
from app.accounts.terms import TERMS_VERSION
from app.audit.models import AuditEntry
from scenarios.models import Scenario
from tests.conftest import bearer_for, make_citizen

METRO = "r1_test_metro_trip"
BIKE = "r1_test_bikeshare_ride"


@pytest.fixture
def scenarios(db_session) -> None:
    for code in (METRO, BIKE):
        db_session.add(Scenario(code=code, category="行", status="live"))
    db_session.flush()


@pytest.fixture
def newcomer(db_session, scenarios) -> tuple[int, dict[str, str]]:
    """A citizen who has consented to nothing yet, committed to the test's savepoint."""
    citizen = make_citizen(privacy_consent=False)
    headers = bearer_for(citizen)
    db_session.commit()  # error answers roll back the (shared) test session: keep the setup
    return citizen, headers


def _grant(client, headers, **body):
    return client.post("/api/v1/me/consents", json=body, headers=headers)


def _privacy(client, headers, version: str = TERMS_VERSION):
    return _grant(client, headers, kind="privacy", terms_version=version)


def _error(response) -> str:
    return response.get_json()["error"]["code"]


def _audit_actions(db_session, citizen_id: int) -> list[str]:
    return list(
        db_session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor_id == str(citizen_id)).order_by(AuditEntry.id)
        )
    )


def test_consent_to_the_current_privacy_terms(client, db_session, newcomer):
    citizen, headers = newcomer

    response = _privacy(client, headers)

    assert response.status_code == 201
    body = response.get_json()
    assert body["kind"] == "privacy"
    assert body["terms_version"] == TERMS_VERSION
    assert body["active"] is True and body["withdrawn_at"] is None and body["granted_at"]
    assert service.has_privacy_consent(citizen)
    assert client.get("/api/v1/me", headers=headers).get_json()["consents_required"] is False
    assert _audit_actions(db_session, citizen) == ["consent.granted"]


def test_consenting_again_returns_the_existing_consent(client, db_session, newcomer):
    citizen, headers = newcomer
    first = _privacy(client, headers).get_json()

    again = _privacy(client, headers)

    assert again.status_code == 200
    assert again.get_json()["id"] == first["id"]
    assert _audit_actions(db_session, citizen) == ["consent.granted"]


def test_an_outdated_terms_version_is_refused(client, db_session, newcomer):
    citizen, headers = newcomer

    response = _privacy(client, headers, version="2025-01")

    assert response.status_code == 409
    assert _error(response) == "terms_version_outdated"
    assert response.get_json()["error"]["details"] == {"current_version": TERMS_VERSION}
    assert not service.has_privacy_consent(citizen)


def test_accepting_new_terms_replaces_the_old_consent_without_a_gap(client, db_session, newcomer):
    citizen, headers = newcomer
    db_session.add(Consent(citizen_id=citizen, kind="privacy", terms_version="2025-01"))
    db_session.commit()
    assert client.get("/api/v1/me", headers=headers).get_json()["consents_required"] is True

    response = _privacy(client, headers)

    assert response.status_code == 201
    consents = client.get("/api/v1/me/consents", headers=headers).get_json()["items"]
    assert [(c["terms_version"], c["active"]) for c in consents] == [(TERMS_VERSION, True), ("2025-01", False)]


def test_trajectory_consent_needs_the_privacy_consent_first(client, db_session, newcomer):
    citizen, headers = newcomer

    response = _grant(client, headers, kind="trajectory", scenario_code=METRO)

    assert response.status_code == 409
    assert _error(response) == "privacy_consent_required"
    assert not service.has_trajectory_consent(citizen, METRO)


def test_trajectory_consent_is_separate_per_scenario(client, db_session, newcomer):
    citizen, headers = newcomer
    _privacy(client, headers)

    response = _grant(client, headers, kind="trajectory", scenario_code=METRO)

    assert response.status_code == 201
    assert response.get_json()["scenario_code"] == METRO
    assert service.has_trajectory_consent(citizen, METRO)
    assert not service.has_trajectory_consent(citizen, BIKE)
    assert _grant(client, headers, kind="trajectory", scenario_code=METRO).status_code == 200


def test_trajectory_consent_for_an_unknown_scenario_is_404(client, db_session, newcomer):
    _, headers = newcomer
    _privacy(client, headers)

    response = _grant(client, headers, kind="trajectory", scenario_code="teleportation")

    assert response.status_code == 404
    assert _error(response) == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "privacy"},
        {"kind": "trajectory"},
        {"kind": "privacy", "terms_version": TERMS_VERSION, "scenario_code": METRO},
        {"kind": "trajectory", "scenario_code": METRO, "terms_version": TERMS_VERSION},
        {"kind": "financial", "terms_version": TERMS_VERSION},
        {"kind": "privacy", "terms_version": TERMS_VERSION, "granted_at": "2020-01-01T00:00:00Z"},
        {"kind": "privacy", "terms_version": TERMS_VERSION, "citizen_id": 1},
    ],
)
def test_malformed_consent_requests_are_400(client, db_session, newcomer, body):
    _, headers = newcomer

    response = client.post("/api/v1/me/consents", json=body, headers=headers)

    assert response.status_code == 400
    assert _error(response) == "validation_error"


def test_withdrawal_stops_at_once_and_history_is_kept(client, db_session, newcomer):
    citizen, headers = newcomer
    _privacy(client, headers)
    metro = _grant(client, headers, kind="trajectory", scenario_code=METRO).get_json()

    response = client.delete(f"/api/v1/me/consents/{metro['id']}", headers=headers)

    assert response.status_code == 200
    assert response.get_json()["active"] is False and response.get_json()["withdrawn_at"]
    assert not service.has_trajectory_consent(citizen, METRO)
    assert service.has_privacy_consent(citizen)
    # What the crediting job reads: the consents table itself.
    row = db_session.get(Consent, metro["id"], populate_existing=True)
    assert row.withdrawn_at is not None
    assert _audit_actions(db_session, citizen) == ["consent.granted", "consent.granted", "consent.withdrawn"]
    # Consent can be given again; the withdrawn one stays in the history.
    assert _grant(client, headers, kind="trajectory", scenario_code=METRO).status_code == 201
    listed = client.get("/api/v1/me/consents", headers=headers).get_json()["items"]
    assert [(c["kind"], c["active"]) for c in listed] == [
        ("trajectory", True), ("trajectory", False), ("privacy", True)
    ]


def test_withdrawing_privacy_consent_withdraws_trajectory_consents_too(client, db_session, newcomer):
    citizen, headers = newcomer
    privacy = _privacy(client, headers).get_json()
    _grant(client, headers, kind="trajectory", scenario_code=METRO)
    _grant(client, headers, kind="trajectory", scenario_code=BIKE)

    assert client.delete(f"/api/v1/me/consents/{privacy['id']}", headers=headers).status_code == 200

    assert not service.has_privacy_consent(citizen)
    assert not service.has_trajectory_consent(citizen, METRO)
    assert not service.has_trajectory_consent(citizen, BIKE)
    listed = client.get("/api/v1/me/consents", headers=headers).get_json()["items"]
    assert all(c["active"] is False for c in listed) and len(listed) == 3
    assert _audit_actions(db_session, citizen).count("consent.withdrawn") == 3
    assert client.get("/api/v1/me", headers=headers).get_json()["consents_required"] is True


def test_withdrawing_twice_changes_nothing(client, db_session, newcomer):
    _, headers = newcomer
    consent = _privacy(client, headers).get_json()
    first = client.delete(f"/api/v1/me/consents/{consent['id']}", headers=headers).get_json()

    second = client.delete(f"/api/v1/me/consents/{consent['id']}", headers=headers)

    assert second.status_code == 200
    assert second.get_json()["withdrawn_at"] == first["withdrawn_at"]


def test_another_citizens_consent_cannot_be_withdrawn(client, db_session, newcomer):
    victim, victim_headers = newcomer
    consent = _privacy(client, victim_headers).get_json()
    attacker_headers = bearer_for(make_citizen())
    db_session.commit()

    response = client.delete(f"/api/v1/me/consents/{consent['id']}", headers=attacker_headers)

    assert response.status_code == 404
    assert service.has_privacy_consent(victim)
    assert client.delete("/api/v1/me/consents/999999999", headers=victim_headers).status_code == 404


def test_consents_list_only_my_own(client, db_session, newcomer):
    _, headers = newcomer
    make_citizen(trajectory_scenarios=(METRO,))  # someone else's consents
    db_session.commit()

    assert client.get("/api/v1/me/consents", headers=headers).get_json()["items"] == []


def test_consent_routes_need_a_token(client, db_session):
    assert client.get("/api/v1/me/consents").status_code == 401
    body = {"kind": "privacy", "terms_version": TERMS_VERSION}
    assert client.post("/api/v1/me/consents", json=body).status_code == 401
    assert client.delete("/api/v1/me/consents/1").status_code == 401
