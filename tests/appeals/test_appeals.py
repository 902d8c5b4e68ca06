"""Appeals for a missing credit: the citizen's form and list, the reviewers' queue and decision."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from app.appeals.service import MAX_PENDING_PER_CITIZEN
from app.audit.models import AuditEntry
from app.extensions import db
from app.ledger.models import LedgerTransfer
from app.ledger.service import account_balances, check_invariants, transfer_explanation
from app.notifications.models import Notification
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.rewards.factories import make_staff
from tests.rewards.test_coupons_support import idem

MINE = "/api/v1/me/appeals"
QUEUE = "/api/v1/staff/appeals"


def form(**overrides: Any) -> dict[str, Any]:
    body = {"scenario_code": "metro_trip", "occurred_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
            "partner_reference": "SHM-20261125-0042", "description": "进站刷卡了，但没有积分",
            "einvoice_number": None}
    body.update(overrides)
    return body


@pytest.fixture
def people(db_session, starter_scenarios) -> dict[str, Any]:
    alice, bob = make_citizen(), make_citizen()
    reviewer, operator, admin = make_staff("reviewer"), make_staff("operator"), make_staff("admin")
    headers = {"alice": bearer_for(alice), "bob": bearer_for(bob),
               "reviewer": bearer_as(f"staff:{reviewer}", "reviewer"),
               "operator": bearer_as(f"staff:{operator}", "operator"), "admin": bearer_as(f"staff:{admin}", "admin")}
    db_session.commit()
    return {"alice": alice, "bob": bob, "reviewer": reviewer, "headers": headers}


def file(client: FlaskClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = client.post(MINE, headers={**headers, **idem()}, json=form(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_citizen_files_an_appeal_and_sees_it_pending(client: FlaskClient, people: dict[str, Any], db_session) -> None:
    appeal = file(client, people["headers"]["alice"])
    assert appeal["status"] == "pending" and appeal["reason"] is None and appeal["points"] is None
    assert appeal["description"] == "进站刷卡了，但没有积分"
    listed = client.get(MINE, headers=people["headers"]["alice"]).get_json()
    assert [a["id"] for a in listed["items"]] == [appeal["id"]] and listed["next_cursor"] is None
    # What the citizen wrote is sealed at rest; the audit row has ids and codes only.
    stored = db_session.execute(text("SELECT details_enc FROM appeals WHERE id = :id"), {"id": appeal["id"]}).scalar()
    assert b"SHM-20261125-0042" not in stored and "没有积分".encode() not in stored
    audited = db_session.scalar(select(AuditEntry).where(AuditEntry.action == "appeal.filed"))
    assert audited.details == {"scenario_code": "metro_trip"}
    # Another citizen sees nothing of it.
    assert client.get(MINE, headers=people["headers"]["bob"]).get_json()["items"] == []


def test_the_form_is_validated(client: FlaskClient, people: dict[str, Any]) -> None:
    alice = people["headers"]["alice"]
    cases = [
        (form(partner_reference=None, description=None), 400),
        (form(scenario_code="teleport"), 404),
        (form(occurred_at=(datetime.now(UTC) + timedelta(days=1)).isoformat()), 400),
        (form(occurred_at="2026-11-25T10:00:00"), 400),  # no time zone
        ({**form(), "status": "approved"}, 400),  # server-owned
        (form(einvoice_number="12;DROP"), 400),
    ]
    for body, status in cases:
        response = client.post(MINE, headers={**alice, **idem()}, json=body)
        assert response.status_code == status, (body, response.get_json())
    assert client.get(MINE, headers=alice).get_json()["items"] == []


def test_a_retried_appeal_is_filed_once(client: FlaskClient, people: dict[str, Any]) -> None:
    headers, body = {**people["headers"]["alice"], "Idempotency-Key": "appeal-retry-1"}, form()
    first = client.post(MINE, headers=headers, json=body)
    second = client.post(MINE, headers=headers, json=body)
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true" and second.get_json() == first.get_json()
    assert len(client.get(MINE, headers=people["headers"]["alice"]).get_json()["items"]) == 1


def test_pending_appeals_per_citizen_are_bounded(client: FlaskClient, people: dict[str, Any]) -> None:
    for _ in range(MAX_PENDING_PER_CITIZEN):
        file(client, people["headers"]["alice"])
    refused = client.post(MINE, headers={**people["headers"]["alice"], **idem()}, json=form())
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "too_many_pending_appeals"


def test_the_citizens_list_pages_newest_first(client: FlaskClient, people: dict[str, Any]) -> None:
    ids = [file(client, people["headers"]["alice"])["id"] for _ in range(3)]
    first = client.get(f"{MINE}?limit=2", headers=people["headers"]["alice"]).get_json()
    second = client.get(f"{MINE}?limit=2&cursor={first['next_cursor']}", headers=people["headers"]["alice"]).get_json()
    assert [a["id"] for a in first["items"] + second["items"]] == ids[::-1] and second["next_cursor"] is None


def test_reviewers_and_operators_see_the_queue_by_status(client: FlaskClient, people: dict[str, Any]) -> None:
    a = file(client, people["headers"]["alice"])
    b = file(client, people["headers"]["bob"])
    decided = client.post(f"{QUEUE}/{a['id']}/decision", headers=people["headers"]["reviewer"],
                          json={"decision": "reject", "reason": "No trip with that reference."})
    assert decided.status_code == 200, decided.get_json()
    for role in ("reviewer", "operator", "admin"):
        pending = client.get(f"{QUEUE}?status=pending", headers=people["headers"][role])
        assert pending.status_code == 200, pending.get_json()
        assert [item["id"] for item in pending.get_json()["items"]] == [b["id"]]
        assert pending.get_json()["items"][0]["citizen_id"] == people["bob"]
    everything = client.get(QUEUE, headers=people["headers"]["reviewer"]).get_json()["items"]
    assert [item["id"] for item in everything] == [a["id"], b["id"]]  # oldest first
    assert client.get(QUEUE, headers=people["headers"]["alice"]).status_code == 403


def test_approval_credits_once_through_the_ledger_with_an_explanation(
    client: FlaskClient, people: dict[str, Any], db_session
) -> None:
    appeal = file(client, people["headers"]["alice"])
    url = f"{QUEUE}/{appeal['id']}/decision"
    body = {"decision": "approve", "points": 120, "reason": "Confirmed with Shanghai Metro."}
    approved = client.post(url, headers={**people["headers"]["reviewer"], "Idempotency-Key": "d-1"}, json=body)

    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["status"] == "approved" and approved.get_json()["points"] == 120
    assert account_balances(people["alice"]).available == 120
    credit = db_session.get(LedgerTransfer, approved.get_json()["transfer_id"])
    assert (credit.kind, credit.amount, credit.citizen_id) == ("earn", 120, people["alice"])
    explanation = transfer_explanation(credit.id)
    assert explanation["appeal_id"] == appeal["id"] and str(appeal["id"]) in explanation["explanation_zh"]
    # A retry replays; another decision is refused; nothing is credited twice.
    replay = client.post(url, headers={**people["headers"]["reviewer"], "Idempotency-Key": "d-1"}, json=body)
    assert replay.status_code == 200 and replay.get_json() == approved.get_json()
    again = client.post(url, headers=people["headers"]["operator"], json=body)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "appeal_already_decided"
    assert account_balances(people["alice"]).available == 120
    assert check_invariants() == []
    # The citizen sees the outcome and is told.
    mine = client.get(MINE, headers=people["headers"]["alice"]).get_json()["items"][0]
    assert (mine["status"], mine["reason"], mine["points"]) == ("approved", "Confirmed with Shanghai Metro.", 120)
    notice = db_session.scalar(select(Notification).where(Notification.citizen_id == people["alice"]))
    assert (notice.kind, notice.payload) == ("appeal_decided", {"appeal_id": appeal["id"], "status": "approved",
                                                                "points": 120})
    audited = db_session.scalar(select(AuditEntry).where(AuditEntry.action == "appeal.approved"))
    assert audited.actor_id == str(people["reviewer"]) and audited.details["points"] == 120


def test_rejection_shows_the_reason_and_credits_nothing(
    client: FlaskClient, people: dict[str, Any], db_session
) -> None:
    appeal = file(client, people["headers"]["alice"])
    url = f"{QUEUE}/{appeal['id']}/decision"
    for bad in ({"decision": "reject"}, {"decision": "reject", "reason": "  "},
                {"decision": "reject", "reason": "No.", "points": 5}, {"decision": "approve"},
                {"decision": "approve", "points": 1001}, {"decision": "maybe", "reason": "x"}):
        assert client.post(url, headers=people["headers"]["reviewer"], json=bad).status_code == 400, bad
    rejected = client.post(url, headers=people["headers"]["reviewer"],
                           json={"decision": "reject", "reason": "该行程已于当日入账。"})
    assert rejected.status_code == 200 and rejected.get_json()["transfer_id"] is None
    mine = client.get(MINE, headers=people["headers"]["alice"]).get_json()["items"][0]
    assert (mine["status"], mine["reason"], mine["points"]) == ("rejected", "该行程已于当日入账。", None)
    assert account_balances(people["alice"]).available == 0
    notice = client.get("/api/v1/me/notifications", headers=people["headers"]["alice"]).get_json()["items"][0]
    assert notice["kind"] == "appeal_decided" and notice["payload"]["status"] == "rejected"
    assert client.post(f"{QUEUE}/999999999/decision", headers=people["headers"]["reviewer"],
                       json={"decision": "reject", "reason": "x"}).status_code == 404


def test_two_reviewers_deciding_at_once_credit_once(app: Flask, committed, starter_scenarios_committed) -> None:
    alice = make_citizen()
    reviewers = [bearer_as(f"staff:{make_staff('reviewer')}", "reviewer") for _ in range(8)]
    committed.commit()
    client = app.test_client()
    appeal = file(client, bearer_for(alice))

    def decide(headers: dict[str, str]) -> int:
        return app.test_client().post(f"{QUEUE}/{appeal['id']}/decision", headers=headers,
                                      json={"decision": "approve", "points": 50}).status_code

    with ThreadPoolExecutor(len(reviewers)) as pool:
        statuses = sorted(pool.map(decide, reviewers))
    assert statuses == [200] + [409] * (len(reviewers) - 1)
    with app.app_context():
        assert account_balances(alice).available == 50
        assert db.session.scalar(select(func.count()).select_from(LedgerTransfer)
                                 .where(LedgerTransfer.citizen_id == alice)) == 1
        assert check_invariants() == []


@pytest.fixture
def starter_scenarios_committed(committed) -> None:
    from scenarios.service import load_directory

    load_directory()
    committed.commit()
