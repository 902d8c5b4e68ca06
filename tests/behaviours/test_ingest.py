"""Partner batch ingestion (DESIGN §Ingestion path, BRIEF R4.1): one bad event never fails the batch,
event ids are idempotency keys, nothing a partner sent is lost, and the partner learns every outcome."""
from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from app.behaviours.crediting import credit_batch
from app.behaviours.models import EventBatch, InboundEvent, RejectedEvent
from app.crypto import blind_index
from app.extensions import db
from tests.conftest import make_citizen
from tests.partner_client import json_body, signed_headers
from tests.partners.helpers import BATCH, ago, bind_through_api, invoice_event, metro_event, new_partner

REF = "CARD-8800-0001"


@pytest.fixture
def metro(db_session, starter_scenarios):
    creds = new_partner("metro")
    db_session.commit()
    return creds


@pytest.fixture
def citizen(client, db_session, metro) -> int:
    citizen_id = make_citizen(trajectory_scenarios=("metro_trip",))
    db_session.commit()
    assert bind_through_api(client, metro, citizen_id, REF).status_code == 201
    return citizen_id


def verdicts(response) -> list[tuple[int, str, str | None]]:
    return [(v["index"], v["status"], v.get("code")) for v in response.get_json()["events"]]


def stored(external_id: str) -> InboundEvent | None:
    return db.session.scalars(select(InboundEvent).where(InboundEvent.external_id == external_id)).one_or_none()


def queued_job_ids(redis) -> list[str]:
    return [key.decode() for key in redis.lrange("rq:queue:carbon-test", 0, -1)]


# ---- accepted events ----------------------------------------------------------------------------


def test_a_good_batch_is_accepted_stored_and_queued_for_crediting(client, metro, redis) -> None:
    response = metro.push(client, [metro_event("t-1", REF), metro_event("t-2", REF, district=None)])

    assert response.status_code == 202
    body = response.get_json()
    assert {k: body[k] for k in ("received", "accepted", "duplicates", "rejected")} == {
        "received": 2, "accepted": 2, "duplicates": 0, "rejected": 0}
    assert verdicts(response) == [(0, "accepted", None), (1, "accepted", None)]
    event = stored("t-1")
    assert (event.status, event.source, event.partner_id, event.citizen_id) == ("accepted", "partner", metro.id, None)
    assert event.account_ref_idx == blind_index(f"partner_ref:{metro.id}", REF)
    assert event.activity == {"distance_km": "10.57"} and event.district == "pudong"
    assert event.scenario_version_id is not None
    batch = db.session.get(EventBatch, uuid.UUID(body["batch_id"]))
    assert (batch.event_count, batch.accepted_count, batch.completed_at) == (2, 2, None)
    assert f"credit-{body['batch_id']}" in queued_job_ids(redis)


def test_the_account_reference_is_never_stored_in_plain_text(client, metro) -> None:
    metro.push(client, [metro_event("t-1", REF), metro_event("bad", REF, activity={"distance_km": "x"})])

    rows = db.session.execute(select(InboundEvent.activity, InboundEvent.account_ref_idx)).all()
    rejected = db.session.scalars(select(RejectedEvent.payload)).all()
    assert REF not in json.dumps([row.activity for row in rows] + rejected)
    assert all(REF.encode() not in row.account_ref_idx for row in rows)
    assert rejected[0]["account_ref_idx"] == blind_index(f"partner_ref:{metro.id}", REF).hex()


def test_a_batch_with_3_bad_events_accepts_the_others_and_names_the_bad_indices(client, metro) -> None:
    events = [metro_event(f"ok-{i}", REF) for i in range(7)]
    events.insert(1, metro_event("bad-activity", REF, activity={"distance_km": "far"}))
    events.insert(4, metro_event("bad-scenario", REF, scenario="teleport"))
    events.insert(8, "not an object")

    response = metro.push(client, events)

    body = response.get_json()
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (7, 3, 0)
    rejected = [(v["index"], v["code"]) for v in body["events"] if v["status"] == "rejected"]
    assert rejected == [(1, "invalid_activity"), (4, "unknown_scenario"), (8, "invalid_event")]
    assert "distance_km" in body["events"][1]["reason"]
    stored_rejections = db.session.execute(
        select(RejectedEvent.position, RejectedEvent.external_id, RejectedEvent.code).order_by(RejectedEvent.position)
    ).all()
    assert [tuple(row) for row in stored_rejections] == [
        (1, "bad-activity", "invalid_activity"), (4, "bad-scenario", "unknown_scenario"), (8, None, "invalid_event")]
    assert db.session.scalars(select(RejectedEvent.payload).where(RejectedEvent.position == 8)).one() == {
        "value": "not an object"}


# ---- duplicates ---------------------------------------------------------------------------------


def test_the_same_event_id_twice_in_one_batch_is_accepted_once(client, metro) -> None:
    response = metro.push(client, [metro_event("same", REF), metro_event("same", REF, activity={"distance_km": "3"})])

    assert verdicts(response) == [(0, "accepted", None), (1, "duplicate", None)]
    assert response.get_json()["duplicates"] == 1
    assert stored("same").activity == {"distance_km": "10.57"}


def test_the_same_event_id_in_two_batches_is_accepted_once(client, metro) -> None:
    first = metro.push(client, [metro_event("again", REF)])
    second = metro.push(client, [metro_event("again", REF), metro_event("new", REF)])

    assert verdicts(first) == [(0, "accepted", None)]
    assert verdicts(second) == [(0, "duplicate", None), (1, "accepted", None)]
    assert db.session.scalar(select(func.count()).where(InboundEvent.external_id == "again")) == 1


def test_event_ids_are_per_partner(client, metro, db_session) -> None:
    other = new_partner("metro")
    db_session.commit()

    metro.push(client, [metro_event("shared-id", REF)])
    response = other.push(client, [metro_event("shared-id", "OTHER-REF")])

    assert verdicts(response) == [(0, "accepted", None)]


def test_a_rejected_event_can_be_corrected_and_resent_with_the_same_id(client, metro) -> None:
    metro.push(client, [metro_event("fix-me", REF, activity={"distance_km": "-1"})])

    response = metro.push(client, [metro_event("fix-me", REF)])

    assert verdicts(response) == [(0, "accepted", None)]


# ---- per-event rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, code",
    [
        ({"occurred_at": ago(days=7, minutes=1)}, "event_too_old"),
        ({"occurred_at": ago(days=-1)}, "event_in_future"),  # a day ahead: parameters are built at collection
        ({"claimed_elsewhere": True}, "double_counting"),
        ({"claimed_elsewhere": None}, "invalid_event"),
        ({"claimed_elsewhere": "no"}, "invalid_event"),
        ({"scenario": "bus_trip"}, "source_not_allowed"),
        ({"scenario": "teleport"}, "unknown_scenario"),
        ({"district": "gotham"}, "invalid_district"),
        ({"activity": {"distance_km": "500"}}, "invalid_activity"),
        ({"activity": {"distance_km": "1", "speed": 3}}, "invalid_activity"),
        ({"activity": [1]}, "invalid_event"),
        ({"occurred_at": "2026-11-26T10:00:00"}, "invalid_event"),
        ({"occurred_at": "yesterday"}, "invalid_event"),
        ({"event_id": ""}, "invalid_event"),
        ({"event_id": "x" * 129}, "invalid_event"),
        ({"event_id": 42}, "invalid_event"),
        ({"account_ref": "r" * 129}, "invalid_event"),
        ({"gps_trace": [[31.2, 121.4]]}, "invalid_event"),
    ],
)
def test_each_rule_rejects_only_its_event(client, metro, overrides, code) -> None:
    checked = {**metro_event("checked", REF), **overrides}
    response = metro.push(client, [metro_event("good", REF), checked])

    assert verdicts(response) == [(0, "accepted", None), (1, "rejected", code)]
    assert response.get_json()["events"][1]["reason"]


def test_non_finite_numbers_are_rejected_and_kept_as_text(client, metro) -> None:
    body = json_body({"events": [metro_event("nan", REF)]}).replace(b'"10.57"', b"NaN")

    response = metro.call(client, "POST", BATCH, body=body)

    assert verdicts(response) == [(0, "rejected", "invalid_activity")]
    payload = db.session.scalars(select(RejectedEvent.payload)).one()
    assert payload["activity"] == {"distance_km": "nan"}


def test_an_event_just_inside_the_age_limit_is_accepted(client, metro) -> None:
    response = metro.push(client, [metro_event("old-but-ok", REF, occurred_at=ago(days=6, hours=23))])

    assert verdicts(response) == [(0, "accepted", None)]


def test_a_unique_item_gets_an_item_key(client, db_session, starter_scenarios) -> None:
    einvoice = new_partner("einvoice")
    db_session.commit()

    einvoice.push(client, [invoice_event("inv-1", "user-1", "25312000000012345678")])

    assert stored("inv-1").item_key == "document_number:25312000000012345678"


# ---- the envelope -------------------------------------------------------------------------------


def test_more_than_5000_events_is_413(client, metro) -> None:
    response = metro.push(client, [{}] * 5001)

    assert (response.status_code, response.get_json()["error"]["code"]) == (413, "batch_too_large")


def test_a_body_over_4_mib_is_413_json(client, metro) -> None:
    body = json_body({"events": [metro_event("big", REF, activity={"distance_km": "1", "pad": "x" * (4 << 20)})]})

    response = client.post(BATCH, data=body, headers=signed_headers(metro.key_id, metro.secret, body))

    assert (response.status_code, response.get_json()["error"]["code"]) == (413, "payload_too_large")


@pytest.mark.parametrize(
    "payload",
    [{"events": []}, {"events": "many"}, {}, {"events": [], "batch": 1}, [1, 2]],
)
def test_a_malformed_envelope_is_400(client, metro, payload) -> None:
    response = metro.call(client, "POST", BATCH, payload)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in ("validation_error", "empty_batch")


def test_a_batch_with_nothing_accepted_is_complete_at_once(client, metro, redis) -> None:
    response = metro.push(client, [metro_event("bad", REF, claimed_elsewhere=True)])

    batch = db.session.get(EventBatch, uuid.UUID(response.get_json()["batch_id"]))
    assert batch.completed_at is not None
    assert queued_job_ids(redis) == []


# ---- the batch status ---------------------------------------------------------------------------


def batch_status(client, partner, batch_id: str, query: str = ""):
    return partner.call(client, "GET", f"/api/v1/partner/batches/{batch_id}{query}")


def test_the_batch_status_reports_each_events_outcome(client, metro, citizen) -> None:
    pushed = metro.push(client, [
        metro_event("s-1", REF),
        metro_event("s-2", "NOBODY"),
        metro_event("s-3", REF, claimed_elsewhere=True),
    ]).get_json()

    before = batch_status(client, metro, pushed["batch_id"]).get_json()
    assert [(e["event_id"], e["status"]) for e in before["events"]] == [
        ("s-1", "accepted"), ("s-2", "accepted"), ("s-3", "rejected")]
    assert before["completed_at"] is None

    credit_batch(uuid.UUID(pushed["batch_id"]))
    after = batch_status(client, metro, pushed["batch_id"]).get_json()

    assert after["completed_at"] is not None
    first, second, third = after["events"]
    assert (first["status"], first["grams"], first["credited_grams"], first["points"]) == ("credited", 828, 828, 828)
    assert second["status"] == "unknown_account"
    assert (third["status"], third["code"], third["index"]) == ("rejected", "double_counting", 2)
    assert after["counts"] == {"received": 3, "accepted": 2, "duplicates": 0, "rejected": 1,
                               "outcomes": {"credited": 1, "unknown_account": 1}}


def test_the_batch_status_is_cursor_paginated(client, metro) -> None:
    events = [metro_event(f"p-{i}", REF) for i in range(5)] + [metro_event("p-bad", REF, scenario="nope")]
    batch_id = metro.push(client, events).get_json()["batch_id"]

    seen, cursor = [], ""
    while True:
        page = batch_status(client, metro, batch_id, f"?limit=4{cursor}").get_json()
        seen += [e["event_id"] for e in page["events"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"

    assert seen == [f"p-{i}" for i in range(5)] + ["p-bad"]
    assert batch_status(client, metro, batch_id, "?limit=1001").status_code == 400
    assert batch_status(client, metro, batch_id, "?cursor=garbage").status_code == 400


def test_only_the_sending_partner_sees_a_batch(client, metro, db_session) -> None:
    other = new_partner("metro")
    db_session.commit()
    batch_id = metro.push(client, [metro_event("mine", REF)]).get_json()["batch_id"]

    assert batch_status(client, other, batch_id).status_code == 404
    assert batch_status(client, metro, str(uuid.uuid4())).status_code == 404
    assert client.get(f"/api/v1/partner/batches/{batch_id}").status_code == 401


def test_the_openapi_spec_documents_the_batch_path_with_its_colon(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()

    operation = spec["paths"]["/api/v1/partner/events:batch"]["post"]
    assert operation["security"] == [{"partnerSignature": []}]
    assert "202" in operation["responses"]
    assert "PartnerEvent" in spec["components"]["schemas"]
