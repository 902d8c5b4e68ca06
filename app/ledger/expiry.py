"""Expiring points: lots past their day move to the expiry account; citizens are told 30 days before.

Run by the recurring job app.jobs.expire_points. Both functions are safe to rerun at any time:
- Expiry takes due lots with FOR UPDATE SKIP LOCKED (a second job takes other lots), then their
  citizens' accounts with SKIP LOCKED too (a citizen spending right now is left for the next run),
  so it never waits while holding a lot. Each lot's transfer id is uuid5 of
  "expire:lot:<lot id>:<points it had expired before>": deterministic, and new only when there is
  something new to expire. A second run finds every due lot at remaining = 0: nothing more.
- Held points of an expiring lot are NOT expired: the hold keeps its allocation (the citizen
  claimed a coupon in time). If that hold is later voided the points return to the expired lot
  and expire at the next run; if it is posted, they were spent.
- The notice is one notification per lot (dedupe key "points_expiring:lot:<id>").
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.ledger import lots
from app.ledger.service import (
    _INSERT_POSTED,
    _account_ids,
    _ints,
    _lock_posted,
    _transfer_id,
    _update_posted,
    force_custom_plans,
)
from app.notifications.service import NewNotification, record_many

EXPIRY_ACCOUNT = "expiry:points"
NOTICE_KIND = "points_expiring"

_DUE_LOTS = text(
    """
    SELECT id, citizen_id, remaining, expired, expires_on
    FROM ledger_lots
    WHERE expires_on < :today AND remaining > 0
    ORDER BY expires_on, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
_LOCK_CITIZENS = text(
    """
    SELECT citizen_id, id FROM ledger_accounts
    WHERE citizen_id = ANY(CAST(:citizen_ids AS bigint[]))
    ORDER BY id
    FOR NO KEY UPDATE SKIP LOCKED
    """
)
_EMPTY_LOTS = text(
    """
    UPDATE ledger_lots AS l SET remaining = l.remaining - v.amount, expired = l.expired + v.amount
    FROM unnest(CAST(:ids AS bigint[]), CAST(:amounts AS bigint[])) AS v(id, amount)
    WHERE l.id = ANY(CAST(:ids AS bigint[])) AND l.id = v.id
    """
)


@dataclass(frozen=True)
class ExpiryRun:
    lots: int  # lots expired in this run
    points: int  # points expired in this run
    skipped: int  # due lots left for the next run (their citizen was busy)


def expire_due_lots(today: date | None = None, *, limit: int = 5000) -> ExpiryRun:
    """Expire the free points of up to `limit` lots whose last day is before `today` (Asia/Shanghai).

    Set-based: one statement each to take the lots, lock the accounts, insert the transfers
    (citizen -> expiry account, kind "expire"), update the accounts and empty the lots.
    """
    today = today or lots.shanghai_day()
    force_custom_plans()
    due = db.session.execute(_DUE_LOTS, {"today": today, "limit": limit}).all()
    if not due:
        return ExpiryRun(0, 0, 0)
    accounts = dict(
        db.session.execute(_LOCK_CITIZENS, {"citizen_ids": _ints(sorted({lot.citizen_id for lot in due}))})
        .tuples()
        .all()
    )
    expiring = [lot for lot in due if lot.citizen_id in accounts]
    if not expiring:
        return ExpiryRun(0, 0, len(due))
    expiry_account = _account_ids([EXPIRY_ACCOUNT])[EXPIRY_ACCOUNT]
    rows = []
    moves: dict[int, tuple[int, int]] = {expiry_account: (sum(lot.remaining for lot in expiring), 0)}
    for lot in expiring:
        key = f"expire:lot:{lot.id}:{lot.expired}"
        account = accounts[lot.citizen_id]
        rows.append([str(_transfer_id(key)), key, "expire", account, expiry_account, lot.citizen_id, lot.remaining,
                     {"reason": "expired", "expires_on": lot.expires_on.isoformat()}])
        credit, debit = moves.get(account, (0, 0))
        moves[account] = (credit, debit + lot.remaining)
    _lock_posted(moves)  # the citizens are already locked; this adds the expiry account, last
    db.session.execute(_INSERT_POSTED, {"rows": json.dumps(rows, ensure_ascii=False)})
    _update_posted(moves)
    db.session.execute(
        _EMPTY_LOTS,
        {"ids": _ints(lot.id for lot in expiring), "amounts": _ints(lot.remaining for lot in expiring)},
    )
    return ExpiryRun(len(expiring), sum(lot.remaining for lot in expiring), len(due) - len(expiring))


_EXPIRING_LOTS = text(
    """
    SELECT id, citizen_id, remaining, expires_on
    FROM ledger_lots
    WHERE expires_on BETWEEN :today AND :until AND remaining > 0 AND id > :after
    ORDER BY id
    LIMIT :limit
    """
)


def notify_expiring_lots(today: date | None = None, *, batch: int = 5000) -> int:
    """Tell each citizen once per lot that points expire within the notice period; returns how many were new."""
    today = today or lots.shanghai_day()
    until = today + timedelta(days=int(current_app.config.get("POINTS_EXPIRY_NOTICE_DAYS", 30)))
    created = 0
    after = 0
    while True:
        found = db.session.execute(
            _EXPIRING_LOTS, {"today": today, "until": until, "after": after, "limit": batch}
        ).all()
        if not found:
            return created
        created += record_many(
            [
                NewNotification(
                    citizen_id=lot.citizen_id,
                    kind=NOTICE_KIND,
                    payload={"points": lot.remaining, "expires_on": lot.expires_on.isoformat(), "lot_id": lot.id},
                    dedupe_key=f"{NOTICE_KIND}:lot:{lot.id}",
                )
                for lot in found
            ]
        )
        after = found[-1].id
