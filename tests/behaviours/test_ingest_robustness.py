"""`ingest_batch` called directly (not through the HTTP parser, which refuses such bodies whole):
an event holding text PostgreSQL cannot store, or nested absurdly deep, is rejected on its own as
`invalid_event`, the rest of its batch goes through, and what is kept of it is storable."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.behaviours.ingest import MAX_EVENT_DEPTH, ingest_batch
from app.behaviours.models import InboundEvent, RejectedEvent
from app.extensions import db
from app.partners.models import Partner
from tests.partners.helpers import metro_event, new_partner

REF = "CARD-8800-0001"


@pytest.fixture
def partner(db_session, starter_scenarios) -> Partner:
    creds = new_partner("metro")
    db_session.flush()
    return db_session.get(Partner, creds.id)


def nested(depth: int) -> dict:
    """{"a": {"a": ... {"a": "10.57"}}} with `depth` dicts: far past the recursion limit when asked."""
    value: object = "10.57"
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[return-value]


def nested_list(depth: int) -> list:
    value: object = "pudong"
    for _ in range(depth):
        value = [value]
    return value  # type: ignore[return-value]


def push(partner: Partner, *bad: dict) -> dict:
    """A good event, then the bad ones, then another good one; everything flushed to PostgreSQL."""
    receipt = ingest_batch(partner, [metro_event("good-1", REF), *bad, metro_event("good-2", REF)])
    db.session.flush()
    return receipt


def outcome(receipt: dict) -> list[tuple[str, str | None]]:
    return [(v["status"], v.get("code")) for v in receipt["events"]]


def rejected_rows() -> list[RejectedEvent]:
    return list(db.session.scalars(select(RejectedEvent).order_by(RejectedEvent.position)))


BAD_EVENTS = {
    "nul in account_ref": {"account_ref": "CARD\x00-1"},
    "surrogate in account_ref": {"account_ref": "CARD-\ud800"},
    "nul in scenario": {"scenario": "metro\x00trip"},
    "surrogate in scenario": {"scenario": "metro_\udfff"},
    "nul in an activity value": {"activity": {"distance_km": "10\x0057"}},
    "surrogate in an activity key": {"activity": {"distance_\udc00": "1"}},
    "nul in a nested key": {"activity": {"distance_km": {"x\x00": 1}}},
    "surrogate in occurred_at": {"occurred_at": "2026-11-26T01:00:00\ud83d"},
    "nul in district": {"district": "pu\x00dong"},
    "deep activity": {"activity": nested(MAX_EVENT_DEPTH + 5)},
    "deeper than the recursion limit": {"activity": nested(5_000)},
    "deep list in district": {"district": nested_list(MAX_EVENT_DEPTH + 2)},
}


@pytest.mark.parametrize("overrides", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_an_unstorable_event_is_rejected_alone_as_invalid_event(partner, overrides) -> None:
    bad = {**metro_event("bad-1", REF), **overrides}

    receipt = push(partner, bad)

    assert outcome(receipt) == [("accepted", None), ("rejected", "invalid_event"), ("accepted", None)]
    assert (receipt["accepted"], receipt["rejected"]) == (2, 1)
    assert receipt["events"][1]["event_id"] == "bad-1"
    stored = db.session.scalars(select(InboundEvent.external_id).order_by(InboundEvent.id)).all()
    assert stored == ["good-1", "good-2"]
    [row] = rejected_rows()
    assert (row.position, row.external_id, row.code) == (1, "bad-1", "invalid_event")
    assert "\x00" not in row.reason
    assert "account_ref" not in row.payload  # kept only as its blind index, or none when unstorable


def test_the_rejected_payload_keeps_what_it_can_as_storable_text(partner) -> None:
    bad = metro_event("bad-1", "CARD\x00-1", activity={"note\x00": "a\ud800b", "deep": nested(MAX_EVENT_DEPTH + 3)})

    push(partner, bad)

    [row] = rejected_rows()
    assert row.payload["account_ref_idx"] is None  # a reference that is not text cannot be indexed
    assert row.payload["activity"]["note\ufffd"] == "a\ufffdb"
    deepest = row.payload["activity"]["deep"]
    for _ in range(MAX_EVENT_DEPTH):
        if not isinstance(deepest, dict):
            break
        deepest = deepest["a"]
    assert deepest == f"<nested deeper than {MAX_EVENT_DEPTH} levels>"


def test_an_event_id_that_is_not_storable_is_answered_and_kept_as_none(partner) -> None:
    receipt = push(partner, metro_event("bad\x00id", REF), metro_event("bad-\ud800", REF))

    assert outcome(receipt) == [("accepted", None), ("rejected", "invalid_event"), ("rejected", "invalid_event"),
                                ("accepted", None)]
    assert [v["event_id"] for v in receipt["events"]] == ["good-1", None, None, "good-2"]
    assert [row.external_id for row in rejected_rows()] == [None, None]


def test_an_unknown_field_named_with_a_nul_is_named_storably_in_the_reason(partner) -> None:
    receipt = push(partner, {**metro_event("bad-1", REF), "gps\x00trace": [1, 2]})

    assert outcome(receipt)[1] == ("rejected", "invalid_event")
    assert receipt["events"][1]["reason"] == "gps\ufffdtrace: unknown field"
    assert rejected_rows()[0].reason == "gps\ufffdtrace: unknown field"


def test_numbers_json_cannot_write_are_kept_as_text(partner) -> None:
    huge = 10 ** 5000  # json.dumps refuses integers past 4,300 digits
    bad = metro_event("bad-1", REF, activity={"distance_km": huge, "speed": float("inf")})
    not_an_object = [float("nan"), huge]

    receipt = push(partner, bad, not_an_object)  # type: ignore[arg-type]

    assert [code for _, code in outcome(receipt)] == [None, "invalid_activity", "invalid_event", None]
    first, second = rejected_rows()
    assert first.payload["activity"] == {"distance_km": f"<integer of {huge.bit_length()} bits>", "speed": "inf"}
    assert second.payload == {"value": ["nan", f"<integer of {huge.bit_length()} bits>"]}


def test_a_storable_event_is_not_slowed_into_rejection(partner) -> None:
    """Chinese text and astral characters are storable: only U+0000 and lone surrogates are not."""
    event = metro_event("ok-中文-\U0001f687", REF)
    receipt = push(partner, {**event, "event_id": "ok-1", "account_ref": "卡-\U0001f687-1"})

    assert outcome(receipt) == [("accepted", None)] * 3
