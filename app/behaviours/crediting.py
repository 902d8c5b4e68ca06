"""Crediting accepted events (BRIEF R3.3, R4.3; DESIGN §Ingestion path): the heart of the earn path.

One call credits a whole partner batch (`credit_batch`) or a few self-declared events
(`credit_events`), inside the caller's unit of work (`app.jobs.job_boundary`): it flushes, never
commits, so a crash anywhere rolls everything back and a rerun starts from the same `accepted`
events. The database work is set-based — a fixed number of statements per batch, whatever its
size:

1. lock the batch row (two runs of one batch serialise; a completed batch returns at once);
2. ONE SELECT of the accepted events with the citizen (via the partner binding), the scenario
   version in force at the event's time, the consents and the Asia/Shanghai day and month;
3. outcomes before the caps: unknown account, no consent, rejected, then the unique item claims
   (one INSERT … ON CONFLICT DO NOTHING), then the usage rows for the caps, created and locked in
   key order (so concurrent batches cannot deadlock), then the anti-fraud rules;
4. the calculation is pure Python (`scenarios.engine`), walked in occurred_at order over the
   locked usage totals: caps and fractional points come out exact;
5. one `post_earnings` call for the whole batch (idempotent by event: `earn:event:<id>`);
6. ONE UPDATE of the events from arrays, one UPDATE per usage table, the batch marked complete.

A second run finds no `accepted` event and changes nothing (and the ledger keys are idempotent
anyway), which is what makes the rq job retry-safe and the sweeper harmless.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import text

from app.behaviours import fraud
from app.extensions import db, redis_client
from scenarios.engine import (
    ActivityError,
    FormulaError,
    ScenarioSpec,
    calculate,
    cap_quantity,
    capped_grams,
    points_for,
)

log = logging.getLogger(__name__)

REASON_LENGTH = 255
# Outcomes that give an item claim back (a flagged event keeps its claim while it waits for review;
# a capped one keeps it too: the item was recorded, only the points were over the cap).
RELEASING_STATUSES = frozenset({"rejected", "no_consent", "unknown_account"})
SHANGHAI = "Asia/Shanghai"

# Testing only: when TESTING is on and this environment variable names a pause point, crediting
# sets the Redis key PAUSE_FLAG_KEY and sleeps there (inside the transaction, before the commit),
# so a test can SIGKILL a real worker at a known moment. Ignored outside testing.
TEST_PAUSE_ENV = "CREDIT_TEST_PAUSE_AT"
TEST_PAUSE_SECONDS_ENV = "CREDIT_TEST_PAUSE_SECONDS"
PAUSE_FLAG_KEY = "test:crediting:paused"

_SELECT_ACCEPTED = f"""
SELECT e.id,
       e.scenario_code,
       e.occurred_at,
       e.activity,
       e.item_key,
       e.district,
       c.id AS citizen_id,
       c.status AS citizen_status,
       s.id AS scenario_id,
       s.status AS scenario_status,
       v.id AS version_id,
       CASE WHEN e.partner_id IS NULL THEN coalesce(v.self_declared, false)
            ELSE p.kind = ANY(v.data_sources) END AS source_allowed,
       p.kind AS partner_kind,
       EXISTS (
           SELECT 1 FROM consents pc
           WHERE pc.citizen_id = c.id AND pc.kind = 'privacy' AND pc.withdrawn_at IS NULL
       ) AS privacy_consent,
       (NOT coalesce(v.trajectory_consent, false)) OR EXISTS (
           SELECT 1 FROM consents tc
           WHERE tc.citizen_id = c.id AND tc.kind = 'trajectory'
             AND tc.scenario_code = e.scenario_code AND tc.withdrawn_at IS NULL
       ) AS trajectory_consent,
       (e.occurred_at AT TIME ZONE '{SHANGHAI}')::date AS day,
       date_trunc('month', e.occurred_at AT TIME ZONE '{SHANGHAI}')::date AS month
FROM inbound_events e
LEFT JOIN partner_bindings b
       ON e.citizen_id IS NULL
      AND b.partner_id = e.partner_id
      AND b.account_ref_idx = e.account_ref_idx
      AND b.unbound_at IS NULL
LEFT JOIN partners p ON p.id = e.partner_id
LEFT JOIN citizens c ON c.id = coalesce(e.citizen_id, b.citizen_id)
LEFT JOIN scenarios s ON s.code = e.scenario_code
LEFT JOIN LATERAL (
    SELECT sv.id, sv.trajectory_consent, sv.data_sources, sv.self_declared
    FROM scenario_versions sv
    WHERE sv.scenario_id = s.id
      AND sv.effective_from <= e.occurred_at
      AND (sv.effective_to IS NULL OR e.occurred_at < sv.effective_to)
    ORDER BY sv.effective_from DESC
    LIMIT 1
) v ON true
WHERE {{where}} AND e.status = 'accepted'
ORDER BY e.occurred_at, e.id
FOR UPDATE OF e
"""

# Claims unique items (e.g. e-invoice numbers), in key order so two batches claiming overlapping
# items queue instead of deadlocking. A claim already held by the same event (a citizen's
# declaration claims it when declared, or a rerun) is ours; a NULL holder means another
# transaction claimed it concurrently and committed after this statement's snapshot.
_CLAIM_ITEMS = """
WITH wanted AS (
    SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:ids AS bigint[])) AS w(item_key, event_id)
), inserted AS (
    INSERT INTO claimed_items (item_key, event_id, claimed_at)
    SELECT item_key, event_id, now() FROM wanted ORDER BY item_key
    ON CONFLICT (item_key) DO NOTHING
    RETURNING item_key, event_id
)
SELECT w.event_id, coalesce(i.event_id, ci.event_id) AS holder
FROM wanted w
LEFT JOIN inserted i ON i.item_key = w.item_key
LEFT JOIN claimed_items ci ON ci.item_key = w.item_key
"""

_INSERT_DAILY = """
INSERT INTO daily_usage (citizen_id, scenario_id, day, quantity, events, grams, points)
SELECT citizen_id, scenario_id, day, 0, 0, 0, 0
FROM unnest(CAST(:citizens AS bigint[]), CAST(:scenarios AS bigint[]), CAST(:periods AS date[]))
     AS k(citizen_id, scenario_id, day)
ORDER BY citizen_id, scenario_id, day
ON CONFLICT DO NOTHING
"""
_LOCK_DAILY = """
SELECT d.citizen_id, d.scenario_id, d.day, d.quantity, d.events, d.grams, d.points
FROM daily_usage d
JOIN unnest(CAST(:citizens AS bigint[]), CAST(:scenarios AS bigint[]), CAST(:periods AS date[]))
     AS k(citizen_id, scenario_id, day)
  ON d.citizen_id = k.citizen_id AND d.scenario_id = k.scenario_id AND d.day = k.day
ORDER BY d.citizen_id, d.scenario_id, d.day
FOR UPDATE OF d
"""
_UPDATE_DAILY = """
UPDATE daily_usage d
SET quantity = k.quantity, events = k.events, grams = k.grams, points = k.points
FROM unnest(CAST(:citizens AS bigint[]), CAST(:scenarios AS bigint[]), CAST(:periods AS date[]),
            CAST(:quantities AS numeric[]), CAST(:events AS integer[]), CAST(:grams AS bigint[]),
            CAST(:points AS bigint[]))
     AS k(citizen_id, scenario_id, day, quantity, events, grams, points)
WHERE d.citizen_id = k.citizen_id AND d.scenario_id = k.scenario_id AND d.day = k.day
"""
_INSERT_MONTHLY = """
INSERT INTO monthly_usage (citizen_id, scenario_id, month, quantity, grams, points)
SELECT citizen_id, scenario_id, month, 0, 0, 0
FROM unnest(CAST(:citizens AS bigint[]), CAST(:scenarios AS bigint[]), CAST(:periods AS date[]))
     AS k(citizen_id, scenario_id, month)
ORDER BY citizen_id, scenario_id, month
ON CONFLICT DO NOTHING
"""
_LOCK_MONTHLY = """
SELECT m.citizen_id, m.scenario_id, m.month, m.quantity, 0 AS events, m.grams, m.points
FROM monthly_usage m
JOIN unnest(CAST(:citizens AS bigint[]), CAST(:scenarios AS bigint[]), CAST(:periods AS date[]))
     AS k(citizen_id, scenario_id, month)
  ON m.citizen_id = k.citizen_id AND m.scenario_id = k.scenario_id AND m.month = k.month
ORDER BY m.citizen_id, m.scenario_id, m.month
FOR UPDATE OF m
"""
_UPDATE_MONTHLY = """
UPDATE monthly_usage m
SET quantity = k.quantity, grams = k.grams, points = k.points
FROM unnest(CAST(:citizens AS bigint[]), CAST(:scenarios AS bigint[]), CAST(:periods AS date[]),
            CAST(:quantities AS numeric[]), CAST(:grams AS bigint[]), CAST(:points AS bigint[]))
     AS k(citizen_id, scenario_id, month, quantity, grams, points)
WHERE m.citizen_id = k.citizen_id AND m.scenario_id = k.scenario_id AND m.month = k.month
"""

# Trips of the same citizens already recorded in the same minute (the same-minute fraud rule).
_RECORDED_SAME_MINUTE = """
SELECT DISTINCT e.citizen_id, e.scenario_code, date_trunc('minute', e.occurred_at) AS minute
FROM unnest(CAST(:citizens AS bigint[]), CAST(:codes AS text[]), CAST(:minutes AS timestamptz[]))
     AS w(citizen_id, scenario_code, minute)
JOIN inbound_events e
  ON e.citizen_id = w.citizen_id
 AND e.occurred_at >= w.minute AND e.occurred_at < w.minute + interval '1 minute'
 AND e.scenario_code = w.scenario_code
WHERE e.status = ANY(CAST(:statuses AS text[]))
"""

_WRITE_OUTCOMES = """
UPDATE inbound_events e
SET status = o.status,
    reason = o.reason,
    citizen_id = coalesce(e.citizen_id, o.citizen_id),
    scenario_version_id = o.version_id,
    grams = o.grams,
    credited_grams = o.credited_grams,
    capped_grams = o.capped_grams,
    points = o.points,
    transfer_id = o.transfer_id,
    processed_at = now()
FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:reasons AS text[]),
            CAST(:citizens AS bigint[]), CAST(:versions AS bigint[]), CAST(:grams AS bigint[]),
            CAST(:credited AS bigint[]), CAST(:capped AS bigint[]), CAST(:points AS bigint[]),
            CAST(:transfers AS uuid[]))
     AS o(id, status, reason, citizen_id, version_id, grams, credited_grams, capped_grams, points, transfer_id)
WHERE e.id = o.id AND e.status = 'accepted'
"""

_COMPLETE_BATCH = """
UPDATE event_batches SET completed_at = now()
WHERE id = :batch_id AND completed_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM inbound_events WHERE batch_id = :batch_id AND status = 'accepted')
"""


@dataclass
class _Event:
    """One accepted event as loaded, and its outcome as it is decided."""

    id: int
    scenario_code: str
    occurred_at: datetime
    activity: dict[str, Any]
    item_key: str | None
    district: str | None
    citizen_id: int | None
    scenario_id: int | None
    version_id: int | None
    day: date
    month: date
    status: str = "accepted"
    reason: str | None = None
    spec: ScenarioSpec | None = None
    trace: dict[str, Any] | None = None
    quantity: Decimal = Decimal(0)
    grams: int | None = None
    credited_grams: int | None = None
    capped_grams: int | None = None
    points: int | None = None
    cap_applied: dict[str, Any] | None = None
    transfer_id: uuid.UUID | None = None

    def decide(self, status: str, reason: str | None = None) -> None:
        self.status = status
        self.reason = None if reason is None else reason[:REASON_LENGTH]

    @property
    def open(self) -> bool:
        return self.status == "accepted"


@dataclass
class _Usage:
    quantity: Decimal
    events: int
    grams: int
    points: int
    changed: bool = False


# --------------------------------------------------------------------------------------------
# Entry points


def credit_batch(batch_id: uuid.UUID) -> dict[str, int]:
    """Credit every accepted event of a partner batch; a completed (or rerun) batch changes nothing."""
    locked = db.session.execute(
        text("SELECT completed_at FROM event_batches WHERE id = :id FOR UPDATE"), {"id": batch_id}
    ).first()
    if locked is None:
        log.warning("credit_batch: batch %s does not exist", batch_id)
        return {"events": 0}
    if locked.completed_at is not None:
        return {"events": 0}
    counts = _credit("e.batch_id = :batch_id", {"batch_id": batch_id})
    db.session.execute(text(_COMPLETE_BATCH), {"batch_id": batch_id})
    _pause_for_tests("before_commit")
    return counts


def credit_events(event_ids: list[int], *, reviewed: bool = False) -> dict[str, int]:
    """Credit the given accepted events (self-declared ones); the event rows themselves are locked.

    `reviewed=True` is for events a reviewer approved after they were flagged (set back to
    `accepted` by the review service): the anti-fraud rules that held them are not applied again;
    consent, caps, item claims and the ledger are.
    """
    if not event_ids:
        return {"events": 0}
    counts = _credit(
        "e.id = ANY(CAST(:event_ids AS bigint[]))", {"event_ids": sorted(set(event_ids))}, fraud_checks=not reviewed
    )
    _pause_for_tests("before_commit")
    return counts


def batches_to_sweep(after_seconds: int, limit: int = 1000) -> list[uuid.UUID]:
    """Batches still uncredited `after_seconds` after they arrived (their enqueue was lost, or a worker died)."""
    rows = db.session.execute(
        text(
            "SELECT id FROM event_batches WHERE completed_at IS NULL "
            "AND received_at <= now() - make_interval(secs => :after) "
            "ORDER BY received_at LIMIT :limit"
        ),
        {"after": after_seconds, "limit": limit},
    ).scalars()
    return list(rows)


# --------------------------------------------------------------------------------------------
# The shared implementation


def _credit(where: str, params: dict[str, Any], *, fraud_checks: bool = True) -> dict[str, int]:
    # JIT is off for every connection (config): it cost 1-3 s on this 50-150 ms batch SELECT.
    events = _load(where, params)
    if not events:
        return {"events": 0}
    _screen(events)
    _claim_items([event for event in events if event.open])
    daily, monthly = _lock_usage([event for event in events if event.open])
    if fraud_checks:
        _apply_fraud_rules([event for event in events if event.open])
    _apply_caps([event for event in events if event.open], daily, monthly)
    _post_to_ledger([event for event in events if event.status == "credited" and event.points])
    _write_usage(daily, monthly)
    _write_outcomes(events)
    _release_claims([event for event in events if event.status in RELEASING_STATUSES and event.item_key])
    counts = Counter(event.status for event in events)
    return {
        "events": len(events),
        **dict(counts),
        "points": sum(event.points or 0 for event in events),
    }


def _load(where: str, params: dict[str, Any]) -> list[_Event]:
    rows = db.session.execute(text(_SELECT_ACCEPTED.format(where=where)), params).mappings().all()
    events = []
    for row in rows:
        event = _Event(
            id=row["id"],
            scenario_code=row["scenario_code"],
            occurred_at=row["occurred_at"],
            activity=row["activity"],
            item_key=row["item_key"],
            district=row["district"],
            citizen_id=row["citizen_id"],
            scenario_id=row["scenario_id"],
            version_id=row["version_id"],
            day=row["day"],
            month=row["month"],
        )
        if row["citizen_id"] is None:
            event.decide("unknown_account", "the account reference is not bound to a citizen")
        elif row["citizen_status"] != "active":
            event.citizen_id = None
            event.decide("unknown_account", "the citizen's account is closed")
        elif not row["privacy_consent"]:
            event.citizen_id = None  # nothing is recorded against a citizen who has not consented
            event.decide("no_consent", "no privacy consent in force")
        elif not row["trajectory_consent"]:
            event.citizen_id = None
            event.decide("no_consent", f"no trajectory consent in force for {row['scenario_code']}")
        elif row["scenario_id"] is None:
            event.decide("rejected", f"unknown scenario {row['scenario_code']}")
        elif row["scenario_status"] != "live":
            event.decide("rejected", f"scenario {row['scenario_code']} is {row['scenario_status']}")
        elif row["version_id"] is None:
            event.decide(
                "rejected",
                f"no version of {row['scenario_code']} in force at {row['occurred_at'].isoformat()}",
            )
        elif not row["source_allowed"]:
            source = f"partner kind {row['partner_kind']}" if row["partner_kind"] else "self-declaration"
            event.decide("rejected", f"{source} may not report {row['scenario_code']}")
        events.append(event)
    return events


def _specs(version_ids: set[int]) -> dict[int, ScenarioSpec]:
    from scenarios.models import ScenarioVersion
    from scenarios.service import spec_for

    specs = {}
    for version_id in sorted(version_ids):
        version = db.session.get(ScenarioVersion, version_id)
        assert version is not None
        specs[version_id] = spec_for(version)
    return specs


def _screen(events: list[_Event]) -> None:
    """Calculate every open event with its version's spec; data the version cannot accept is rejected.

    Done before the item claims so a rejected event never holds a claim.
    """
    specs = _specs({event.version_id for event in events if event.open and event.version_id is not None})
    for event in events:
        if not event.open:
            continue
        spec = specs[event.version_id]  # type: ignore[index]
        try:
            calculation = calculate(spec, event.activity)
            event.quantity = cap_quantity(spec, calculation.trace["activity"], calculation.grams)
        except (ActivityError, FormulaError) as error:
            event.decide("rejected", f"activity not accepted by {spec.code} v{spec.version}: {error}")
            continue
        event.spec = spec
        event.trace = calculation.trace
        event.grams = calculation.grams


def _claim_items(events: list[_Event]) -> None:
    """Claim unique items set-based; the first event in occurred_at order wins within the batch."""
    wanted: dict[str, _Event] = {}
    for event in events:
        if event.item_key is None:
            continue
        if event.item_key in wanted:
            event.decide("duplicate_item", "the same item is already claimed in this batch")
        else:
            wanted[event.item_key] = event
    if not wanted:
        return
    keys = list(wanted)
    rows = db.session.execute(
        text(_CLAIM_ITEMS), {"keys": keys, "ids": [wanted[key].id for key in keys]}
    ).all()
    holders = {event_id: holder for event_id, holder in rows}
    for event in wanted.values():
        if holders.get(event.id) != event.id:
            event.decide("duplicate_item", "this item was already credited to another event")


UsageKey = tuple[int, int, date]


def _lock_usage(events: list[_Event]) -> tuple[dict[UsageKey, _Usage], dict[UsageKey, _Usage]]:
    """Create the usage rows the events need and lock them in key order (no deadlock between batches)."""
    day_keys = sorted({(e.citizen_id, e.scenario_id, e.day) for e in events})  # type: ignore[misc]
    month_keys = sorted({(e.citizen_id, e.scenario_id, e.month) for e in events})  # type: ignore[misc]
    return (
        _lock_rows(_INSERT_DAILY, _LOCK_DAILY, day_keys),  # type: ignore[arg-type]
        _lock_rows(_INSERT_MONTHLY, _LOCK_MONTHLY, month_keys),  # type: ignore[arg-type]
    )


def _lock_rows(insert_sql: str, lock_sql: str, keys: list[UsageKey]) -> dict[UsageKey, _Usage]:
    if not keys:
        return {}
    params = {
        "citizens": [key[0] for key in keys],
        "scenarios": [key[1] for key in keys],
        "periods": [key[2] for key in keys],
    }
    db.session.execute(text(insert_sql), params)
    rows = db.session.execute(text(lock_sql), params).all()
    return {
        (row[0], row[1], row[2]): _Usage(quantity=Decimal(row[3]), events=row[4], grams=row[5], points=row[6])
        for row in rows
    }


def _apply_fraud_rules(events: list[_Event]) -> None:
    """Plausibility per event, then no two trips of one citizen in one transport scenario in the same minute.

    Runs after the usage rows are locked: a concurrent batch for the same citizen, scenario and day
    has committed by now, so its trips are visible to the same-minute query.
    """
    recorded = _recorded_minutes([e for e in events if e.scenario_code in fraud.SAME_MINUTE_SCENARIOS])
    for event in events:
        key = (event.citizen_id, event.scenario_code, _minute(event.occurred_at))
        same_minute = event.scenario_code in fraud.SAME_MINUTE_SCENARIOS
        assert event.trace is not None
        reason = fraud.implausible(event.scenario_code, event.trace["activity"])
        if reason is not None:
            event.decide("flagged", reason)
        elif same_minute and key in recorded:
            event.decide("flagged", fraud.SAME_MINUTE_REASON)
        if same_minute:
            recorded.add(key)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _recorded_minutes(events: list[_Event]) -> set[tuple[int, str, datetime]]:
    if not events:
        return set()
    wanted = sorted({(e.citizen_id, e.scenario_code, _minute(e.occurred_at)) for e in events})  # type: ignore[type-var]
    rows = db.session.execute(
        text(_RECORDED_SAME_MINUTE),
        {
            "citizens": [key[0] for key in wanted],
            "codes": [key[1] for key in wanted],
            "minutes": [key[2] for key in wanted],
            "statuses": list(fraud.RECORDED_STATUSES),
        },
    ).all()
    return {(row[0], row[1], row[2]) for row in rows}


def _remaining(cap: Decimal | None, used: Decimal) -> Decimal | None:
    return None if cap is None else cap - used


def _apply_caps(events: list[_Event], daily: dict[UsageKey, _Usage], monthly: dict[UsageKey, _Usage]) -> None:
    """Walk the events in occurred_at order over the locked totals: caps, then points on the daily total."""
    for event in events:
        spec = event.spec
        assert spec is not None and event.grams is not None
        day = daily[(event.citizen_id, event.scenario_id, event.day)]  # type: ignore[index]
        month = monthly[(event.citizen_id, event.scenario_id, event.month)]  # type: ignore[index]
        limits = [
            left
            for left in (_remaining(spec.cap_per_day, day.quantity), _remaining(spec.cap_per_month, month.quantity))
            if left is not None
        ]
        allowed = min(limits) if limits else None
        quantity = event.quantity
        if allowed is None:
            consumed, credited = quantity, event.grams
        else:
            consumed = min(quantity, max(allowed, Decimal(0)))
            credited = capped_grams(event.grams, quantity, allowed)
        over = event.grams - credited
        fully_over = allowed is not None and allowed <= 0
        points = points_for(spec.points_per_gram, day.grams, credited)

        event.credited_grams = credited
        event.capped_grams = over
        event.points = points
        if over > 0 or fully_over:
            event.cap_applied = {
                "unit": spec.cap_unit,
                "per_day": _text(spec.cap_per_day),
                "per_month": _text(spec.cap_per_month),
            }
        if credited > 0 or (event.grams == 0 and not fully_over):
            event.decide("credited")
            day.events += 1
        else:
            event.decide("capped", "over the scenario's cap for the day or month")

        for usage in (day, month):
            usage.quantity += consumed
            usage.grams += credited
            usage.points += points
            usage.changed = True


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(Decimal(value).normalize(), "f")


def _details(event: _Event) -> dict[str, Any]:
    """The explanation stored with the ledger entry: everything needed to recompute it (BRIEF R2.2, R3.4)."""
    spec, trace = event.spec, event.trace
    assert spec is not None and trace is not None
    return {
        "scenario_code": spec.code,
        "scenario_version": spec.version,
        "methodology_code": spec.methodology_code,
        "methodology_version": spec.methodology_version,
        "activity": trace["activity"],
        "formula": trace["formula"],
        "parameters": trace["parameters"],
        "exact": trace["exact"],
        "grams": event.grams,
        "credited_grams": event.credited_grams,
        "capped_grams": event.capped_grams,
        "cap_applied": event.cap_applied,
        "points_per_gram": _text(spec.points_per_gram),
        "occurred_at": event.occurred_at.isoformat(),
        "district": event.district,
    }


def earning_key(event_id: int) -> str:
    return f"earn:event:{event_id}"


def _post_to_ledger(events: list[_Event]) -> None:
    if not events:
        return
    from app.ledger.service import Earning, post_earnings

    earnings = [
        Earning(
            idempotency_key=earning_key(event.id),
            citizen_id=event.citizen_id,  # type: ignore[arg-type]
            scenario_code=event.scenario_code,
            amount=event.points,  # type: ignore[arg-type]
            event_id=event.id,
            details=_details(event),
        )
        for event in events
    ]
    transfers = post_earnings(earnings)
    for event in events:
        event.transfer_id = transfers[earning_key(event.id)]


def _write_usage(daily: dict[UsageKey, _Usage], monthly: dict[UsageKey, _Usage]) -> None:
    changed_days = sorted(key for key, usage in daily.items() if usage.changed)
    if changed_days:
        db.session.execute(
            text(_UPDATE_DAILY),
            {
                "citizens": [key[0] for key in changed_days],
                "scenarios": [key[1] for key in changed_days],
                "periods": [key[2] for key in changed_days],
                "quantities": [daily[key].quantity for key in changed_days],
                "events": [daily[key].events for key in changed_days],
                "grams": [daily[key].grams for key in changed_days],
                "points": [daily[key].points for key in changed_days],
            },
        )
    changed_months = sorted(key for key, usage in monthly.items() if usage.changed)
    if changed_months:
        db.session.execute(
            text(_UPDATE_MONTHLY),
            {
                "citizens": [key[0] for key in changed_months],
                "scenarios": [key[1] for key in changed_months],
                "periods": [key[2] for key in changed_months],
                "quantities": [monthly[key].quantity for key in changed_months],
                "grams": [monthly[key].grams for key in changed_months],
                "points": [monthly[key].points for key in changed_months],
            },
        )


def _write_outcomes(events: list[_Event]) -> None:
    db.session.execute(
        text(_WRITE_OUTCOMES),
        {
            "ids": [e.id for e in events],
            "statuses": [e.status for e in events],
            "reasons": [e.reason for e in events],
            "citizens": [e.citizen_id for e in events],
            "versions": [e.version_id for e in events],
            "grams": [e.grams for e in events],
            "credited": [e.credited_grams for e in events],
            "capped": [e.capped_grams for e in events],
            "points": [e.points for e in events],
            "transfers": [e.transfer_id for e in events],
        },
    )


def _release_claims(events: list[_Event]) -> None:
    """A declaration claims its item when declared; if crediting refuses the event, the item is free again."""
    if events:
        db.session.execute(
            text("DELETE FROM claimed_items WHERE event_id = ANY(CAST(:ids AS bigint[]))"),
            {"ids": [event.id for event in events]},
        )


def _pause_for_tests(point: str) -> None:
    """Testing only: hold the open transaction at `point` so a test can kill the worker there."""
    if not current_app.testing or os.environ.get(TEST_PAUSE_ENV) != point:
        return
    seconds = float(os.environ.get(TEST_PAUSE_SECONDS_ENV, "30"))
    redis_client().set(PAUSE_FLAG_KEY, point, ex=int(seconds) + 60)
    log.warning("crediting paused at %s for %.0f s (%s is set; testing only)", point, seconds, TEST_PAUSE_ENV)
    time.sleep(seconds)
