"""Partner batch ingestion: validate each event on its own, store the good ones in one statement.

The hot path of the system (bench/ingest.py measures it end to end), so it is plain Python over
the decoded JSON dicts — no per-event marshmallow — with scenario specs resolved once per version
and the accepted rows inserted by a single `INSERT … SELECT FROM jsonb_array_elements(:events)`
(each event a JSON array of its columns): one round trip, one JSON parameter and a short,
always-identical query text (psycopg 3 re-parses big multi-row VALUES every call, see DESIGN
§Ingestion path; and dumping eight Python lists as arrays for `unnest` cost ~80 ms of CPU per
5,000 events against ~30 ms for one json.dumps). The statement also resolves each event's citizen.
`ON CONFLICT (partner_id, external_id) DO NOTHING RETURNING external_id` tells which events were
new; the rest are duplicates, which is also what makes 20 concurrent copies of a batch store
each event once.

One bad event never fails the batch: each gets its own verdict (accepted, duplicate, or rejected
with a code and reason), and rejected events are kept in `rejected_events` so nothing a partner
sent is lost. Account references are stored only as their keyed blind index. Crediting happens
later, in one rq job per batch, enqueued after commit.
"""
from __future__ import annotations

import json
import logging
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import insert, text

from app import jobs
from app.accounts.districts import DISTRICT_CODES
from app.behaviours.models import EventBatch, RejectedEvent
from app.errors import AppError
from app.extensions import db
from app.models_base import utcnow
from app.pagination import decode_cursor, page
from app.parsing import MAX_JSON_DEPTH
from app.partners.models import Partner
from app.partners.service import ACCOUNT_REF_MAX, account_ref_index, account_ref_indexer
from scenarios import service as scenarios
from scenarios.engine import ActivityError, ScenarioSpec, activity_to_json, validate_activity

log = logging.getLogger(__name__)

EVENT_KEYS = frozenset(
    {"event_id", "account_ref", "scenario", "occurred_at", "district", "activity", "claimed_elsewhere"}
)
REQUIRED_KEYS = ("event_id", "account_ref", "scenario", "occurred_at", "activity", "claimed_elsewhere")
FUTURE_SKEW = timedelta(minutes=5)
EXTERNAL_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces
SCENARIO_CODE_MAX = 64
TIMESTAMP_MAX = 40
REASON_MAX = 500
# Over HTTP the JSON parser (app.parsing) refuses these for the whole body; ingest_batch called
# directly (jobs, imports, tests) gets the same limits per event: an event nested deeper, or holding
# text PostgreSQL cannot store (U+0000) or UTF-8 cannot encode (an unpaired surrogate), is rejected
# on its own as invalid_event, and what is kept of it is made storable (_storable).
MAX_EVENT_DEPTH = MAX_JSON_DEPTH
_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")
_PAYLOAD_INT_BITS = 10_000  # ~3,000 digits: json.dumps refuses ints past 4,300 digits

# The citizen is resolved here, once, with two index probes: the active binding of the reference,
# if its citizen consents to the privacy terms (an event is never linked to a citizen who does
# not). So the event carries its citizen from the start, crediting reads it instead of joining the
# bindings, and crediting's rewrite of the event leaves every indexed column as it is (a HOT
# update). Crediting checks the citizen's status and every consent again (they may change in
# between), and clears citizen_id where they fail.
_INSERT_ACCEPTED = text(
    """
    INSERT INTO inbound_events (batch_id, partner_id, source, status, received_at, external_id,
                                account_ref_idx, citizen_id, scenario_code, scenario_version_id, occurred_at,
                                district, activity, item_key)
    SELECT :batch_id, :partner_id, 'partner', 'accepted', :received_at, e->>0,
           r.idx,
           (SELECT b.citizen_id FROM partner_bindings b
            WHERE b.partner_id = :partner_id AND b.account_ref_idx = r.idx AND b.unbound_at IS NULL
              AND EXISTS (SELECT 1 FROM consents pc WHERE pc.citizen_id = b.citizen_id AND pc.kind = 'privacy'
                                                      AND pc.withdrawn_at IS NULL)),
           e->>2, (e->>3)::bigint, (e->>4)::timestamptz, e->>5, e->6, e->>7
    FROM jsonb_array_elements(CAST(:events AS jsonb)) AS e
         CROSS JOIN LATERAL decode(e->>1, 'hex') AS r(idx)
    ON CONFLICT (partner_id, external_id) WHERE partner_id IS NOT NULL DO NOTHING
    RETURNING external_id
    """
)


class Rejection(Exception):
    """One event refused at ingestion: a stable code for machines and a reason for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = _storable_text(reason[:REASON_MAX])  # it may quote a field name the partner sent


@dataclass(slots=True)
class _Candidate:
    index: int
    event_id: str
    # For _INSERT_ACCEPTED, JSON-ready: [event_id, ref_idx (hex), scenario, version_id, occurred_at,
    # district, activity, item_key]. An array, not an object: a third less JSON to write and parse.
    row: list[Any]


@dataclass(slots=True)
class _Checked:
    """An event that passed the checks that need no database: its parsed fields."""

    raw: dict
    event_id: str
    account_ref: str
    scenario: str
    occurred_at: datetime
    district: str | None
    activity: dict


@dataclass(frozen=True)
class _Terms:
    """What the per-event checks need of a scenario version, read once (ORM attribute access adds up)."""

    version_id: int
    effective_from: datetime
    effective_to: datetime | None
    data_sources: frozenset[str]
    spec: ScenarioSpec


class _Scenarios:
    """Scenario versions and specs for one batch: one query, one spec per version."""

    def __init__(self, codes: set[str], at_min: datetime, at_max: datetime) -> None:
        found = scenarios.live_versions_in_force(codes, at_min, at_max) if codes else {}
        self._terms: dict[str, list[_Terms]] = {
            code: [
                _Terms(v.id, v.effective_from, v.effective_to, frozenset(v.data_sources), scenarios.spec_for(v))
                for v in versions
            ]
            for code, versions in found.items()
        }
        self._known: dict[str, bool] = {}
        # A scenario with one version in force over the batch's whole time span (the usual case)
        # needs no per-event comparison of aware datetimes (~3% of ingestion's Python, measured).
        self._whole_span: dict[str, _Terms] = {
            code: terms[0]
            for code, terms in self._terms.items()
            if len(terms) == 1 and terms[0].effective_from <= at_min
            and (terms[0].effective_to is None or at_max < terms[0].effective_to)
        }

    def terms_at(self, code: str, at: datetime) -> _Terms:
        """The version in force at `at`; `at` lies within the span the catalogue was made for."""
        terms = self._whole_span.get(code)
        if terms is not None:
            return terms
        for terms in self._terms.get(code, ()):
            if terms.effective_from <= at and (terms.effective_to is None or at < terms.effective_to):
                return terms
        if code not in self._known:
            self._known[code] = scenarios.scenario_by_code(code) is not None
        if not self._known[code]:
            raise Rejection("unknown_scenario", f"scenario: no scenario has the code {code!r}")
        raise Rejection("scenario_not_in_force", f"scenario: {code} is not live or had no version in force then")


def ingest_batch(partner: Partner, events: list[Any]) -> dict[str, Any]:
    """Record one partner batch and answer each event's verdict; the caller's boundary commits."""
    limit = current_app.config["PARTNER_MAX_EVENTS"]
    if len(events) > limit:
        raise AppError("batch_too_large", f"A batch holds at most {limit} events; split it.",
                       f"每批最多 {limit} 条事件，请拆分后提交。", 413)
    if not events:
        raise AppError("empty_batch", "The batch has no events.", "该批次没有事件。", 400)
    now = utcnow()
    earliest = now - timedelta(days=current_app.config["EVENT_MAX_AGE_DAYS"])
    latest = now + FUTURE_SKEW

    verdicts: list[dict[str, Any]] = [{} for _ in events]
    rejected: list[tuple[int, Any, Rejection]] = []
    checked: list[tuple[int, _Checked]] = []
    for index, raw in enumerate(events):
        try:
            checked.append((index, _check_shape(raw, earliest, latest)))
        except Rejection as rejection:
            rejected.append((index, raw, rejection))

    at = [item.occurred_at for _, item in checked]
    catalogue = _Scenarios({item.scenario for _, item in checked}, min(at, default=now), max(at, default=now))
    candidates: list[_Candidate] = []
    seen: dict[str, int] = {}
    refs = _RefIndexes(partner.id)
    kind = partner.kind
    for index, item in checked:
        try:
            candidate = _resolve(kind, index, item, catalogue, refs)
        except Rejection as rejection:
            rejected.append((index, item.raw, rejection))
            continue
        if candidate.event_id in seen:
            verdicts[index] = {"index": index, "event_id": candidate.event_id, "status": "duplicate",
                               "reason": f"same event_id as index {seen[candidate.event_id]} of this batch"}
            continue
        seen[candidate.event_id] = index
        candidates.append(candidate)

    batch = EventBatch(id=uuid.uuid4(), partner_id=partner.id, received_at=now, event_count=len(events))
    db.session.add(batch)
    db.session.flush()
    inserted = _insert_accepted(batch.id, partner.id, now, candidates)
    for candidate in candidates:
        status = "accepted" if candidate.event_id in inserted else "duplicate"
        verdicts[candidate.index] = {"index": candidate.index, "event_id": candidate.event_id, "status": status}
        if status == "duplicate":
            verdicts[candidate.index]["reason"] = "this event_id was already received"
    for index, raw, rejection in rejected:
        verdicts[index] = {"index": index, "event_id": _external_id(raw), "status": "rejected",
                           "code": rejection.code, "reason": rejection.reason}
    _store_rejected(batch.id, partner.id, rejected)

    batch.accepted_count = len(inserted)
    batch.rejected_count = len(rejected)
    batch.duplicate_count = len(events) - len(inserted) - len(rejected)
    if inserted:
        enqueue_crediting(batch.id)
    else:
        batch.completed_at = now  # nothing to credit
    db.session.flush()
    log.info("batch %s from partner %s: %d received, %d accepted, %d duplicate, %d rejected", batch.id,
             partner.id, len(events), batch.accepted_count, batch.duplicate_count, batch.rejected_count)
    return {
        "batch_id": batch.id,
        "received": len(events),
        "accepted": batch.accepted_count,
        "duplicates": batch.duplicate_count,
        "rejected": batch.rejected_count,
        "events": verdicts,
    }


def enqueue_crediting(batch_id: uuid.UUID) -> None:
    jobs.enqueue_after_commit(jobs.credit_batch, str(batch_id), job_id=f"credit-{batch_id}")


# ---------------------------------------------------------------------------------------------
# Per-event checks

def _check_shape(raw: Any, earliest: datetime, latest: datetime) -> _Checked:
    """The checks that need no database, in the order a partner would fix them."""
    if not isinstance(raw, dict):
        raise Rejection("invalid_event", "the event must be a JSON object")
    if not raw.keys() <= EVENT_KEYS:
        unknown = sorted(_key_text(key) for key in raw.keys() - EVENT_KEYS)
        raise Rejection("invalid_event", f"{unknown[0]}: unknown field")
    for key in REQUIRED_KEYS:
        if raw.get(key) is None:
            raise Rejection("invalid_event", f"{key}: is required")
    unstorable = _unstorable(raw)
    if unstorable is not None:
        raise Rejection("invalid_event", unstorable)
    event_id = raw["event_id"]
    if not isinstance(event_id, str) or not EXTERNAL_ID.fullmatch(event_id):
        raise Rejection("invalid_event", "event_id: must be 1-128 printable ASCII characters without spaces")
    account_ref = raw["account_ref"]
    if not isinstance(account_ref, str) or not 0 < len(account_ref) <= ACCOUNT_REF_MAX or not account_ref.strip():
        raise Rejection("invalid_event", f"account_ref: must be 1-{ACCOUNT_REF_MAX} characters")
    scenario = raw["scenario"]
    if not isinstance(scenario, str) or not 0 < len(scenario) <= SCENARIO_CODE_MAX:
        raise Rejection("invalid_event", "scenario: must be a scenario code")
    occurred_at = _parse_timestamp(raw["occurred_at"])
    district = raw.get("district")
    if district is not None and (not isinstance(district, str) or district not in DISTRICT_CODES):
        raise Rejection("invalid_district", "district: must be one of Shanghai's 16 district codes, e.g. pudong")
    activity = raw["activity"]
    if not isinstance(activity, dict):
        raise Rejection("invalid_event", "activity: must be an object")
    claimed_elsewhere = raw["claimed_elsewhere"]
    if not isinstance(claimed_elsewhere, bool):
        raise Rejection("invalid_event", "claimed_elsewhere: must be true or false")
    if claimed_elsewhere:
        raise Rejection(
            "double_counting",
            "claimed_elsewhere: a reduction already claimed on another platform cannot be credited here "
            "(沪环规〔2025〕10号 Art. 3)",
        )
    if occurred_at > latest:
        raise Rejection("event_in_future", "occurred_at: is in the future")
    if occurred_at < earliest:
        raise Rejection("event_too_old", f"occurred_at: is older than {(latest - earliest).days} days")
    return _Checked(raw, event_id, account_ref, scenario, occurred_at, district, activity)


def _parse_timestamp(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > TIMESTAMP_MAX:
        raise Rejection("invalid_event", "occurred_at: must be an ISO 8601 timestamp with an offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Rejection("invalid_event", "occurred_at: must be an ISO 8601 timestamp with an offset") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise Rejection("invalid_event", "occurred_at: needs a time zone offset, e.g. +08:00")
    return parsed


class _RefIndexes:
    """The blind index (hex) of each account reference in a batch: keyed once, each computed once."""

    def __init__(self, partner_id: int) -> None:
        self._index = account_ref_indexer(partner_id)
        self._known: dict[str, str] = {}

    def of(self, account_ref: str) -> str:
        found = self._known.get(account_ref)
        if found is None:
            found = self._known[account_ref] = self._index(account_ref).hex()
        return found


def _resolve(kind: str, index: int, item: _Checked, catalogue: _Scenarios, refs: _RefIndexes) -> _Candidate:
    """The checks against the scenario in force: source, activity fields, unique item."""
    terms = catalogue.terms_at(item.scenario, item.occurred_at)
    if kind not in terms.data_sources:
        raise Rejection("source_not_allowed", f"scenario: {item.scenario} does not accept {kind} data")
    spec = terms.spec
    try:
        activity = validate_activity(spec, item.activity)
    except ActivityError as error:
        raise Rejection("invalid_activity", f"activity.{error.field}: {error.reason}") from None
    row = [
        item.event_id,
        refs.of(item.account_ref),
        item.scenario,
        terms.version_id,
        item.occurred_at.isoformat(),
        item.district,
        activity_to_json(activity),
        item_key(spec, activity),
    ]
    return _Candidate(index, item.event_id, row)


def item_key(spec: ScenarioSpec, activity: dict) -> str | None:
    """`field:value` of the scenario's unique item field (e.g. an e-invoice number), if it has one."""
    for field in spec.fields:
        if field.unique and activity.get(field.name) is not None:
            return f"{field.name}:{activity[field.name]}"
    return None


# ---------------------------------------------------------------------------------------------
# Storage

def _insert_accepted(batch_id: uuid.UUID, partner_id: int, received_at: datetime,
                     candidates: list[_Candidate]) -> set[str]:
    """Insert the new events in one statement; returns the event ids that were not already there."""
    if not candidates:
        return set()
    events = json.dumps([c.row for c in candidates], ensure_ascii=False, separators=(",", ":"))
    rows = db.session.execute(
        _INSERT_ACCEPTED,
        {"batch_id": batch_id, "partner_id": partner_id, "received_at": received_at, "events": events},
    )
    return set(rows.scalars().all())


def _store_rejected(batch_id: uuid.UUID, partner_id: int, rejected: list[tuple[int, Any, Rejection]]) -> None:
    if not rejected:
        return
    db.session.execute(
        insert(RejectedEvent),
        [
            {
                "batch_id": batch_id,
                "position": index,
                "external_id": _external_id(raw),
                "code": rejection.code,
                "reason": rejection.reason,
                "payload": _safe_payload(partner_id, raw),
            }
            for index, raw, rejection in rejected
        ],
    )


_BAD_TEXT = "the event holds text with U+0000 or an unpaired UTF-16 surrogate"


def _unstorable(event: dict) -> str | None:
    """Why an event cannot be stored as it is (too deep, or text PostgreSQL refuses), or None.

    The top level inline (its keys are EVENT_KEYS, already checked), containers level by level:
    no recursion, so no input can exhaust the stack. ~1.5 µs for a usual event.
    """
    for value in event.values():
        kind = type(value)
        if kind is str:
            if ("\x00" in value or not value.isascii()) and not _is_storable_text(value):
                return _BAD_TEXT
        elif kind is dict:  # the activity: flat, of short ASCII keys, in any event worth crediting
            for key, item in value.items():
                if type(key) is str and ("\x00" in key or not key.isascii()) and not _is_storable_text(key):
                    return _BAD_TEXT
                kind = type(item)
                if kind is str:
                    if ("\x00" in item or not item.isascii()) and not _is_storable_text(item):
                        return _BAD_TEXT
                elif kind is dict or kind is list:
                    reason = _unstorable_within(item, 2)
                    if reason is not None:
                        return reason
        elif kind is list:
            reason = _unstorable_within(value, 1)
            if reason is not None:
                return reason
    return None


def _unstorable_within(container: dict | list, above: int) -> str | None:
    """_unstorable for a container with `above` levels of the event above it."""
    level: list[Any] = [container]
    for _level in range(MAX_EVENT_DEPTH - above):
        deeper: list[Any] = []
        for value in level:
            kind = type(value)
            if kind is str:
                if not _is_storable_text(value):
                    return _BAD_TEXT
            elif kind is dict:
                for key in value:
                    if type(key) is str and not _is_storable_text(key):
                        return _BAD_TEXT
                deeper.extend(value.values())
            elif kind is list:
                deeper.extend(value)
        if not deeper:
            return None
        level = deeper
    return f"the event nests deeper than {MAX_EVENT_DEPTH} levels"


def _key_text(key: Any) -> str:
    return key if type(key) is str else f"<{type(key).__name__} key>"


def _is_storable_text(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_text(text: str) -> str:
    return text if _is_storable_text(text) else _UNSTORABLE_TEXT.sub("\ufffd", text)


def _storable(value: Any, depth: int = 0) -> Any:
    """A JSON-and-PostgreSQL-safe copy of what a partner sent, for rejected_events.payload.

    NaN and Infinity (Python's decoder accepts them, jsonb does not) and integers too long for
    json.dumps become text; U+0000 and unpaired surrogates become U+FFFD; containers deeper than
    MAX_EVENT_DEPTH become a note; anything that is not JSON (from a direct caller) becomes its
    repr. Recursion is bounded by MAX_EVENT_DEPTH.
    """
    kind = type(value)
    if kind is str:
        return _storable_text(value)
    if value is None or kind is bool:
        return value
    if kind is int:
        return value if value.bit_length() <= _PAYLOAD_INT_BITS else f"<integer of {value.bit_length()} bits>"
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    if kind is dict or kind is list:
        if depth >= MAX_EVENT_DEPTH:
            return f"<nested deeper than {MAX_EVENT_DEPTH} levels>"
        if kind is list:
            return [_storable(item, depth + 1) for item in value]
        return {_storable_text(key if type(key) is str else repr(key)): _storable(item, depth + 1)
                for key, item in value.items()}
    return _storable_text(repr(value)[:REASON_MAX])


def _external_id(raw: Any) -> str | None:
    if isinstance(raw, dict):
        event_id = raw.get("event_id")
        if type(event_id) is str and 0 < len(event_id) <= 128 and _is_storable_text(event_id):
            return event_id
    return None


def _safe_payload(partner_id: int, raw: Any) -> dict[str, Any]:
    """The event as sent (made storable, see _storable), except the account reference, which is
    kept only as its blind index (none for a reference that is not storable text)."""
    if not isinstance(raw, dict):
        return {"value": _storable(raw)}
    payload = dict(raw)
    ref = payload.pop("account_ref", None)
    payload = _storable(payload)
    if type(ref) is str and ref and _is_storable_text(ref):
        payload["account_ref_idx"] = account_ref_index(partner_id, ref).hex()
    elif ref is not None:
        payload["account_ref_idx"] = None
    return payload



# ---------------------------------------------------------------------------------------------
# What became of a batch

STATUS_PAGE_MAX = 1000

_BATCH_EVENTS = text(
    """
    SELECT part, sort_key, position, external_id, status, code, reason,
           grams, credited_grams, capped_grams, points
    FROM (
        SELECT 0 AS part, e.id AS sort_key, NULL::integer AS position, e.external_id, e.status,
               NULL::text AS code, e.reason, e.grams, e.credited_grams, e.capped_grams, e.points
        FROM inbound_events e WHERE e.batch_id = :batch_id
        UNION ALL
        SELECT 1, r.position, r.position, r.external_id, 'rejected', r.code, r.reason,
               NULL, NULL, NULL, NULL
        FROM rejected_events r WHERE r.batch_id = :batch_id
    ) AS events
    WHERE (part, sort_key) > (:after_part, :after_key)
    ORDER BY part, sort_key
    LIMIT :limit
    """
)

_BATCH_OUTCOMES = text("SELECT status, count(*) FROM inbound_events WHERE batch_id = :batch_id GROUP BY status")


def batch_status(partner_id: int, batch_id: uuid.UUID, cursor: str | None, limit: int) -> dict[str, Any]:
    """Each event's outcome so far: stored events in arrival order, then the rejected ones by index.

    Only the partner that sent the batch may see it; anyone else is told it does not exist.
    """
    batch = db.session.get(EventBatch, batch_id)
    if batch is None or batch.partner_id != partner_id:
        raise AppError("batch_not_found", "No such batch.", "未找到该批次。", 404)
    after = decode_cursor(cursor, 2) or [-1, -1]
    if not all(type(value) is int for value in after):
        raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
    rows = db.session.execute(
        _BATCH_EVENTS, {"batch_id": batch_id, "after_part": after[0], "after_key": after[1], "limit": limit + 1}
    ).mappings().all()
    result = page(list(rows), limit, lambda row: [row["part"], row["sort_key"]])
    outcomes = dict(db.session.execute(_BATCH_OUTCOMES, {"batch_id": batch_id}).tuples().all())
    return {
        "batch_id": batch.id,
        "received_at": batch.received_at,
        "completed_at": batch.completed_at,
        "counts": {
            "received": batch.event_count,
            "accepted": batch.accepted_count,
            "duplicates": batch.duplicate_count,
            "rejected": batch.rejected_count,
            "outcomes": outcomes,
        },
        "events": [_status_item(row) for row in result["items"]],
        "next_cursor": result["next_cursor"],
    }


def _status_item(row: Any) -> dict[str, Any]:
    item = {"event_id": row["external_id"], "status": row["status"]}
    if row["position"] is not None:
        item["index"] = row["position"]
    for key in ("code", "reason", "grams", "credited_grams", "capped_grams", "points"):
        if row[key] is not None:
            item[key] = row[key]
    return item
