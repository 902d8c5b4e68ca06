"""Point lots: what a citizen received, grouped by the day it expires, spent first-to-expire first.

One lot per (citizen, expiry day). Every credit to a citizen adds to the lot of its expiry day
(one upsert per batch); every debit takes from the lots FIFO by expiry. Holds record which lots
they took from (ledger_hold_allocations): a void gives exactly those back, a post consumes them.

The equation check_invariants() holds this module to, per citizen:
    sum(lots.remaining) = available = credits_posted - debits_posted - debits_pending
    sum(lots.held)      = held      = debits_pending
and per lot: held = the allocations of its unresolved holds.

Locking: every change to a citizen's lots happens while the caller holds that citizen's ledger
account row lock (taken first, in the ledger's global order), so the lots read by a statement are
the ones it changes. The expiry job is the exception that proves it: it takes lots with SKIP
LOCKED and then the accounts with SKIP LOCKED too, so it never waits while holding a lot.
These functions flush nothing and commit nothing: they run inside the ledger's own transaction.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.models_base import utcnow

SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai_day(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(SHANGHAI).date()


def expiry_for(earned_on: date) -> date:
    """The last day points earned on `earned_on` count: the end of the calendar year
    POINTS_EXPIRE_AFTER_YEARS later (default 1: points of 2026 count until 2027-12-31)."""
    years = int(current_app.config.get("POINTS_EXPIRE_AFTER_YEARS", 1))
    return date(earned_on.year + years, 12, 31)


def _ints(values: object) -> str:
    return "{" + ",".join(map(str, values)) + "}"  # type: ignore[call-overload]


_CREDIT_LOTS = text(
    """
    INSERT INTO ledger_lots AS l (citizen_id, expires_on, credited, remaining, held, expired)
    SELECT v.citizen_id, CAST(:expires_on AS date), v.amount, v.amount, 0, 0
    FROM unnest(CAST(:citizen_ids AS bigint[]), CAST(:amounts AS bigint[])) AS v(citizen_id, amount)
    ORDER BY v.citizen_id
    ON CONFLICT (citizen_id, expires_on) DO UPDATE
    SET credited = l.credited + excluded.credited, remaining = l.remaining + excluded.remaining
    """
)


def credit_lots(amounts: dict[int, int], expires_on: date) -> None:
    """Add points to each citizen's lot expiring on `expires_on` (one statement for the whole batch)."""
    amounts = {citizen: amount for citizen, amount in amounts.items() if amount > 0}
    if not amounts:
        return
    citizens = sorted(amounts)
    db.session.execute(
        _CREDIT_LOTS,
        {"citizen_ids": _ints(citizens), "amounts": _ints(amounts[c] for c in citizens), "expires_on": expires_on},
    )


# FIFO by expiry: each lot gives min(its remaining, what is still needed after the lots before it).
# `prefer` (a reversal's own lot) goes first when given.
_FIFO = """
    WITH ordered AS (
        SELECT id, remaining,
               sum(remaining) OVER (
                   ORDER BY coalesce(expires_on = CAST(:prefer AS date), false) DESC, expires_on, id
               ) AS upto
        FROM ledger_lots
        WHERE citizen_id = :citizen_id AND remaining > 0
    ),
    taken AS (
        SELECT id, least(remaining, :amount - (upto - remaining)) AS take
        FROM ordered WHERE upto - remaining < :amount
    ),
    updated AS (
        UPDATE ledger_lots AS l SET {assignments}
        FROM taken t WHERE l.id = t.id
        RETURNING l.id, t.take
    )
"""
_SPEND_LOTS = text(
    _FIFO.format(assignments="remaining = l.remaining - t.take") + "SELECT coalesce(sum(take), 0) FROM updated"
)
_HOLD_LOTS = text(
    _FIFO.format(assignments="remaining = l.remaining - t.take, held = l.held + t.take")
    + """,
    allocated AS (
        INSERT INTO ledger_hold_allocations (hold_id, lot_id, amount)
        SELECT CAST(:hold_id AS uuid), id, take FROM updated
        RETURNING amount
    )
    SELECT coalesce(sum(amount), 0) FROM allocated
    """
)


def spend_lots(citizen_id: int, amount: int, *, prefer: date | None = None) -> None:
    """Take `amount` posted points from the citizen's lots, first to expire first."""
    taken = db.session.execute(
        _SPEND_LOTS, {"citizen_id": citizen_id, "amount": amount, "prefer": prefer}
    ).scalar_one()
    _check_taken(citizen_id, amount, taken)


def hold_lots(citizen_id: int, amount: int, hold_id: uuid.UUID) -> None:
    """Move `amount` points of the citizen's lots (FIFO) from remaining to held, recording the allocation."""
    taken = db.session.execute(
        _HOLD_LOTS, {"citizen_id": citizen_id, "amount": amount, "prefer": None, "hold_id": hold_id}
    ).scalar_one()
    _check_taken(citizen_id, amount, taken)


def _check_taken(citizen_id: int, amount: int, taken: int) -> None:
    """The account's conditional update already proved the points are there, so the lots must have them."""
    if taken != amount:
        raise RuntimeError(f"citizen {citizen_id}: lots gave {taken} of {amount} points (lots out of step)")


_RELEASE_LOTS = {
    # posted: the held points are spent
    "post": "held = l.held - a.amount",
    # voided: the held points are free again, in the very lots they came from (an expired lot's
    # points then expire at the job's next run)
    "void": "held = l.held - a.amount, remaining = l.remaining + a.amount",
}


def resolve_hold_lots(hold_id: uuid.UUID, kind: str) -> None:
    """A hold was posted or voided: release its allocations accordingly."""
    db.session.execute(
        text(
            f"UPDATE ledger_lots AS l SET {_RELEASE_LOTS[kind]} FROM ledger_hold_allocations a "
            "WHERE a.hold_id = :hold_id AND l.id = a.lot_id"
        ),
        {"hold_id": hold_id},
    )


def expiring_soon(citizen_id: int, today: date, days: int) -> dict[str, object]:
    """Points that expire within `days` days (free ones: held points are spoken for) and the first date."""
    row = db.session.execute(
        text(
            """
            SELECT coalesce(sum(remaining), 0) AS points, min(expires_on) AS expires_on
            FROM ledger_lots
            WHERE citizen_id = :citizen_id AND remaining > 0 AND expires_on BETWEEN :today AND :until
            """
        ),
        {"citizen_id": citizen_id, "today": today, "until": date.fromordinal(today.toordinal() + days)},
    ).one()
    return {"points": int(row.points), "expires_on": row.expires_on}
