"""Self-declared behaviours (BRIEF R4.2): only where the scenario allows, with consent, valid data, and
an item (e.g. an e-invoice number) that nobody — citizen or partner — can have credited twice."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.accounts.models import Consent
from app.behaviours.crediting import credit_batch
from app.behaviours.models import ClaimedItem, InboundEvent
from app.extensions import db
from app.jobs import credit_events
from tests.conftest import bearer_for, make_citizen
from tests.partners.helpers import ago, bind_through_api, invoice_event, metro_event, new_partner

BEHAVIOURS = "/api/v1/me/behaviours"
INVOICE = "25312000000012345678"


@pytest.fixture
def citizen(db_session, starter_scenarios) -> int:
    citizen_id = make_citizen(trajectory_scenarios=("metro_trip",))
    db_session.commit()
    return citizen_id


def invoice(number: str = INVOICE, **extra) -> dict:
    return {"scenario": "paperless", "activity": {"item_type": "e_invoice", "document_number": number}, **extra}


def declare(client, citizen_id: int, body: dict, key: str | None = None):
    headers = bearer_for(citizen_id)
    if key:
        headers["Idempotency-Key"] = key
    return client.post(BEHAVIOURS, json=body, headers=headers)


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def test_a_valid_e_invoice_is_accepted_claimed_and_queued(client, citizen, redis) -> None:
    response = declare(client, citizen, invoice())

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["scenario"], body["status"], body["item_type"]) == ("paperless", "accepted", "e_invoice")
    assert body["document_number"] == "*" * 16 + "5678"
    assert INVOICE not in response.get_data(as_text=True)
    event = db.session.get(InboundEvent, body["id"])
    assert (event.source, event.partner_id, event.citizen_id) == ("citizen", None, citizen)
    assert event.item_key == f"document_number:{INVOICE}"
    assert str(uuid.UUID(event.external_id)) == event.external_id
    assert db.session.get(ClaimedItem, event.item_key).event_id == event.id
    queued = [key.decode() for key in redis.lrange("rq:queue:carbon-test", 0, -1)]
    assert f"credit-event-{event.id}" in queued


def test_the_crediting_job_credits_the_declaration(client, citizen) -> None:
    event_id = declare(client, citizen, invoice()).get_json()["id"]

    credit_events([event_id])

    shown = client.get(f"{BEHAVIOURS}/{event_id}", headers=bearer_for(citizen)).get_json()
    assert (shown["status"], shown["grams"], shown["points"]) == ("credited", 5, 5)


@pytest.mark.parametrize(
    "activity, field",
    [
        ({"item_type": "e_invoice", "document_number": "2531200000001234567"}, "document_number"),  # 19 digits
        ({"item_type": "e_invoice", "document_number": "2531200000001234567X"}, "document_number"),
        ({"item_type": "paper_invoice", "document_number": INVOICE}, "item_type"),
        ({"item_type": "e_invoice", "document_number": INVOICE, "count": 11}, "count"),
        ({"item_type": "e_invoice"}, "document_number"),
    ],
)
def test_invalid_activity_is_400_naming_the_field(client, citizen, activity, field) -> None:
    response = declare(client, citizen, {"scenario": "paperless", "activity": activity})

    assert (response.status_code, error_code(response)) == (400, "invalid_activity")
    assert response.get_json()["error"]["details"]["field"] == field


def test_the_same_invoice_declared_twice_is_409_even_by_another_citizen(client, citizen, db_session) -> None:
    other = make_citizen()
    db_session.commit()
    assert declare(client, citizen, invoice()).status_code == 201

    again = declare(client, citizen, invoice())
    elsewhere = declare(client, other, invoice())

    assert (again.status_code, error_code(again)) == (409, "item_already_claimed")
    assert (elsewhere.status_code, error_code(elsewhere)) == (409, "item_already_claimed")
    assert db.session.query(InboundEvent).filter_by(item_key=f"document_number:{INVOICE}").count() == 1


def test_an_invoice_declared_by_a_citizen_then_pushed_by_a_partner_is_credited_once(client, citizen, db_session):
    einvoice = new_partner("einvoice")
    other = make_citizen()
    db_session.commit()
    assert bind_through_api(client, einvoice, other, "inv-user-9").status_code == 201
    declared = declare(client, citizen, invoice()).get_json()["id"]
    credit_events([declared])

    pushed = einvoice.push(client, [invoice_event("platform-1", "inv-user-9", INVOICE)]).get_json()
    assert pushed["accepted"] == 1  # ingest does not claim items: crediting does
    credit_batch(uuid.UUID(pushed["batch_id"]))

    partner_event = db.session.scalars(select(InboundEvent).where(InboundEvent.external_id == "platform-1")).one()
    assert partner_event.status == "duplicate_item"
    assert db.session.get(ClaimedItem, f"document_number:{INVOICE}").event_id == declared


def test_a_partner_reported_scenario_cannot_be_self_declared(client, citizen) -> None:
    response = declare(client, citizen, {"scenario": "metro_trip", "activity": {"distance_km": "12"}})

    assert (response.status_code, error_code(response)) == (400, "self_declaration_not_allowed")


def test_an_unknown_scenario_is_400(client, citizen) -> None:
    response = declare(client, citizen, {"scenario": "teleport", "activity": {}})

    assert (response.status_code, error_code(response)) == (400, "unknown_scenario")


def test_declaring_needs_an_active_privacy_consent(client, citizen, db_session) -> None:
    db.session.execute(
        Consent.__table__.update().where(Consent.citizen_id == citizen).values(withdrawn_at=db.func.now())
    )
    db_session.commit()

    response = declare(client, citizen, invoice())

    assert (response.status_code, error_code(response)) == (403, "privacy_consent_required")
    assert db.session.query(ClaimedItem).count() == 0


@pytest.mark.parametrize("occurred_at, code", [(ago(days=8), "event_too_old"), (ago(minutes=-10), "event_in_future")])
def test_the_time_window_applies_to_declarations(client, citizen, occurred_at, code) -> None:
    response = declare(client, citizen, invoice(occurred_at=occurred_at))

    assert (response.status_code, error_code(response)) == (400, code)


@pytest.mark.parametrize(
    "body",
    [
        {"activity": {"item_type": "e_invoice", "document_number": INVOICE}},
        {**invoice(), "status": "credited"},
        {**invoice(), "points": 1000},
        {**invoice(), "occurred_at": "2026-11-26T10:00:00"},
        {**invoice(), "evidence": {"photo": "x" * 501}},
    ],
)
def test_the_body_is_validated_and_server_fields_cannot_be_set(client, citizen, body) -> None:
    response = declare(client, citizen, body)

    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_a_review_required_scenario_waits_for_review(client, citizen, starter_scenarios, redis) -> None:
    starter_scenarios["paperless"].review_required = True
    db.session.commit()

    response = declare(client, citizen, invoice(evidence={"receipt_photo": "upload-42"}))

    assert response.get_json()["status"] == "pending_review"
    assert redis.lrange("rq:queue:carbon-test", 0, -1) == []
    assert db.session.get(ClaimedItem, f"document_number:{INVOICE}") is not None


# ---- idempotency --------------------------------------------------------------------------------

def test_an_idempotency_key_replays_the_first_answer(client, citizen) -> None:
    first = declare(client, citizen, invoice(), key="declare-1")
    replay = declare(client, citizen, invoice(), key="declare-1")

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.get_json() == first.get_json()
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert db.session.query(InboundEvent).filter_by(citizen_id=citizen).count() == 1


def test_the_same_key_with_another_body_is_422(client, citizen) -> None:
    declare(client, citizen, invoice(), key="declare-2")

    response = declare(client, citizen, invoice("25312000000087654321"), key="declare-2")

    assert (response.status_code, error_code(response)) == (422, "idempotency_key_reused")


def test_a_failed_request_does_not_consume_its_key(client, citizen) -> None:
    assert declare(client, citizen, invoice("123"), key="declare-3").status_code == 400

    assert declare(client, citizen, invoice(), key="declare-3").status_code == 201


# ---- reading ------------------------------------------------------------------------------------


def test_my_behaviours_lists_declared_and_partner_events_newest_first(client, citizen, db_session) -> None:
    metro = new_partner("metro")
    db_session.commit()
    bind_through_api(client, metro, citizen, "CARD-LIST-1")
    batch = metro.push(client, [metro_event("older-trip", "CARD-LIST-1", occurred_at=ago(hours=5))]).get_json()
    credit_batch(uuid.UUID(batch["batch_id"]))
    for number in ("25312000000000000001", "25312000000000000002"):
        declare(client, citizen, invoice(number, occurred_at=ago(hours=int(number[-1]))))

    pages, cursor = [], ""
    while True:
        response = client.get(f"{BEHAVIOURS}?limit=2{cursor}", headers=bearer_for(citizen)).get_json()
        pages.append(response["items"])
        if not response["next_cursor"]:
            break
        cursor = f"&cursor={response['next_cursor']}"

    items = [item for page in pages for item in page]
    assert [len(page) for page in pages] == [2, 1]
    assert [(i["source"], i["document_number"]) for i in items] == [
        ("citizen", "*" * 16 + "0001"), ("citizen", "*" * 16 + "0002"), ("partner", None)]
    trip = items[2]
    assert (trip["partner"], trip["status"], trip["points"]) == (metro.code, "credited", 828)
    assert trip["activity"] == {"distance_km": "10.57"}


def test_another_citizens_behaviour_is_not_found(client, citizen, db_session) -> None:
    other = make_citizen()
    db_session.commit()
    event_id = declare(client, citizen, invoice()).get_json()["id"]

    assert client.get(f"{BEHAVIOURS}/{event_id}", headers=bearer_for(other)).status_code == 404
    assert client.get(f"{BEHAVIOURS}/{event_id}", headers=bearer_for(citizen)).status_code == 200
    assert client.get(BEHAVIOURS, headers=bearer_for(other)).get_json()["items"] == []


def test_behaviours_need_a_signed_in_citizen(client, citizen) -> None:
    assert client.get(BEHAVIOURS).status_code == 401
    assert client.post(BEHAVIOURS, json=invoice()).status_code == 401
