"""Recording and reading notifications. Flushes, never commits (the request or job boundary does).

Other domains call `record` (one) or `record_many` (a job's set) in the same transaction as the
change they announce; the unique dedupe key makes a rerun of that job a no-op.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from app.errors import AppError
from app.extensions import db
from app.models_base import utcnow
from app.notifications.models import Notification
from app.pagination import decode_cursor, page

KIND_MAX = 32
DEDUPE_KEY_MAX = 200


@dataclass(frozen=True)
class NewNotification:
    citizen_id: int
    kind: str
    payload: dict[str, Any]
    dedupe_key: str


def record(citizen_id: int, kind: str, payload: dict[str, Any], dedupe_key: str) -> Notification | None:
    """Notify a citizen once per dedupe key; returns the new row, or None when the key was already used."""
    _check(kind, dedupe_key)
    notification_id = db.session.scalar(
        insert(Notification)
        .values(citizen_id=citizen_id, kind=kind, payload=payload, dedupe_key=dedupe_key)
        .on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
        .returning(Notification.id)
    )
    return None if notification_id is None else db.session.get(Notification, notification_id)


_INSERT_MANY = text(
    """
    INSERT INTO notifications (citizen_id, kind, payload, dedupe_key)
    SELECT v.citizen_id, v.kind, v.payload, v.dedupe_key
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(citizen_id bigint, kind text, payload jsonb, dedupe_key text)
    ORDER BY v.dedupe_key
    ON CONFLICT (dedupe_key) DO NOTHING
    """
)


def record_many(notifications: list[NewNotification]) -> int:
    """record() for a job's whole set in one statement; returns how many were new."""
    if not notifications:
        return 0
    for n in notifications:
        _check(n.kind, n.dedupe_key)
    rows = json.dumps(
        [{"citizen_id": n.citizen_id, "kind": n.kind, "payload": n.payload, "dedupe_key": n.dedupe_key}
         for n in notifications],
        ensure_ascii=False,
        default=str,
    )
    return db.session.execute(_INSERT_MANY, {"rows": rows}).rowcount


def _check(kind: str, dedupe_key: str) -> None:
    if not kind or len(kind) > KIND_MAX:
        raise ValueError(f"notification kind must be 1-{KIND_MAX} characters")
    if not dedupe_key or len(dedupe_key) > DEDUPE_KEY_MAX:
        raise ValueError(f"notification dedupe key must be 1-{DEDUPE_KEY_MAX} characters")


def notifications_page(citizen_id: int, *, cursor: str | None, limit: int) -> dict[str, Any]:
    """A citizen's notifications, newest first, with how many are unread in all."""
    values = decode_cursor(cursor, 1)
    query = select(Notification).where(Notification.citizen_id == citizen_id)
    if values is not None:
        if type(values[0]) is not int:
            raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
        query = query.where(Notification.id < values[0])
    rows = list(db.session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)))
    result = page(rows, limit, key=lambda n: [n.id])
    result["unread_count"] = unread_count(citizen_id)
    return result


def unread_count(citizen_id: int) -> int:
    return db.session.scalar(
        select(func.count()).where(Notification.citizen_id == citizen_id, Notification.read_at.is_(None))
    ) or 0


def mark_read(citizen_id: int, notification_id: int) -> Notification:
    """Mark one of the citizen's notifications read (again: no change). Another citizen's is a 404."""
    notification = db.session.scalar(
        select(Notification).where(Notification.id == notification_id, Notification.citizen_id == citizen_id)
    )
    if notification is None:
        raise AppError("notification_not_found", "Notification not found.", "未找到该通知。", 404)
    if notification.read_at is None:
        db.session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.read_at.is_(None))
            .values(read_at=utcnow())
        )
        db.session.refresh(notification)
    return notification
