"""Write audit rows. Never put personal data in `details`: ids and codes only."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select, text

from app.audit.models import AuditEntry
from app.extensions import db
from app.models_base import utcnow

_CHAIN_LOCK = 0x6175646974  # pg advisory lock id: "audit"
_GENESIS = b"\x00" * 32


def record(
    action: str,
    *,
    actor_type: str,
    actor_id: str | int | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an audit row chained to the previous one (serialised by a transaction advisory lock)."""
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev = db.session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)) or _GENESIS
    at = utcnow()
    entry = AuditEntry(
        at=at,
        actor_type=actor_type,
        actor_id=None if actor_id is None else str(actor_id),
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        details=details or {},
        prev_hash=prev,
    )
    entry.hash = _entry_hash(entry)
    db.session.add(entry)
    db.session.flush()
    return entry


def _entry_hash(entry: AuditEntry) -> bytes:
    body = json.dumps(
        [entry.at.isoformat(), entry.actor_type, entry.actor_id, entry.action, entry.object_type,
         entry.object_id, entry.details],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    ).encode()
    return hashlib.sha256(entry.prev_hash + body).digest()


def verify_chain() -> int | None:
    """Return the id of the first row whose hash does not match, or None when the chain is intact."""
    prev = _GENESIS
    for entry in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        if entry.prev_hash != prev or entry.hash != _entry_hash(entry):
            return entry.id
        prev = entry.hash
    return None
