"""Appeals for a missing credit (issue 4): the citizen files one, a reviewer approves or rejects it.

Approval credits the citizen through the crediting path's own ledger call (post_earnings: the
scenario's issuance pool -> the citizen, debts first, today's lot), keyed "appeal:<id>" so an
appeal credits exactly once; the status moves from pending only once (a conditional UPDATE), so
two reviewers deciding together cannot both win. Either outcome is recorded as a notification and
audited. What the citizen wrote is sealed (AES-GCM, bound to the row) and never logged.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from app import crypto
from app.accounts import service as accounts
from app.appeals.models import Appeal
from app.audit import service as audit
from app.auth.guard import Actor
from app.errors import AppError, not_found
from app.extensions import db
from app.ledger.service import Earning, post_earnings, transfer_id_for
from app.models_base import utcnow
from app.notifications import service as notifications
from app.pagination import decode_cursor, page
from scenarios.models import Scenario

# Pending appeals one citizen may have at once: enough for a bad week, not a flood for the queue.
MAX_PENDING_PER_CITIZEN = 10
# Larger corrections need two reviewers (SECURITY §Anti-fraud): they go through the console.
MAX_APPEAL_POINTS = 1000
NOTICE_KIND = "appeal_decided"
DETAIL_FIELDS = ("partner_reference", "description", "einvoice_number")


def appeal_not_found() -> AppError:
    return not_found("appeal", "申诉")


def _details_aad(appeal_id: int) -> str:
    return f"appeal:{appeal_id}:details"


def details_of(appeal: Appeal) -> dict[str, str | None]:
    """The citizen's own words, unsealed (all None once the account was deleted)."""
    if appeal.details_enc is None:
        return dict.fromkeys(DETAIL_FIELDS)
    stored = json.loads(crypto.decrypt(appeal.details_enc, _details_aad(appeal.id)))
    return {name: stored.get(name) for name in DETAIL_FIELDS}


def appeal_view(appeal: Appeal) -> dict[str, Any]:
    return {
        "id": appeal.id,
        "citizen_id": appeal.citizen_id,
        "scenario_code": appeal.scenario_code,
        "occurred_at": appeal.occurred_at,
        **details_of(appeal),
        "status": appeal.status,
        "reason": appeal.reason,
        "points": appeal.points,
        "transfer_id": appeal.transfer_id,
        "decided_at": appeal.decided_at,
        "created_at": appeal.created_at,
    }


# --- the citizen's side ----------------------------------------------------------

def file_appeal(
    citizen_id: int,
    scenario_code: str,
    occurred_at: datetime,
    partner_reference: str | None,
    description: str | None,
    einvoice_number: str | None,
) -> dict[str, Any]:
    """File an appeal; it waits in the reviewers' queue (status pending)."""
    accounts.lock_citizen(citizen_id)  # serialises the pending count below
    if db.session.scalar(select(Scenario.id).where(Scenario.code == scenario_code)) is None:
        raise not_found("scenario", "场景")
    if occurred_at > utcnow():
        raise AppError("occurred_in_future", "The behaviour cannot be in the future.", "行为时间不能晚于现在。", 400,
                       details={"fields": {"occurred_at": ["in the future"]}})
    pending = db.session.scalar(
        select(func.count()).where(Appeal.citizen_id == citizen_id, Appeal.status == "pending")
    )
    if (pending or 0) >= MAX_PENDING_PER_CITIZEN:
        raise AppError(
            "too_many_pending_appeals",
            f"You already have {MAX_PENDING_PER_CITIZEN} appeals waiting for review; wait for their outcome.",
            f"你已有 {MAX_PENDING_PER_CITIZEN} 条申诉正在审核，请等待处理结果。",
            409,
        )
    appeal = Appeal(citizen_id=citizen_id, scenario_code=scenario_code, occurred_at=occurred_at, status="pending")
    db.session.add(appeal)
    db.session.flush()
    words = {"partner_reference": partner_reference, "description": description, "einvoice_number": einvoice_number}
    appeal.details_enc = crypto.encrypt(json.dumps(words, ensure_ascii=False), _details_aad(appeal.id))
    db.session.flush()
    audit.record("appeal.filed", actor_type="citizen", actor_id=citizen_id, object_type="appeal",
                 object_id=appeal.id, details={"scenario_code": scenario_code})
    return appeal_view(appeal)


def my_appeals(citizen_id: int, cursor: str | None, limit: int) -> dict[str, Any]:
    """The citizen's appeals, newest first, with their status and the reviewer's reason."""
    query = select(Appeal).where(Appeal.citizen_id == citizen_id)
    after = _id_cursor(cursor)
    if after is not None:
        query = query.where(Appeal.id < after)
    rows = list(db.session.scalars(query.order_by(Appeal.id.desc()).limit(limit + 1)))
    result = page(rows, limit, key=lambda appeal: [appeal.id])
    result["items"] = [appeal_view(appeal) for appeal in result["items"]]
    return result


# --- the reviewers' side -------------------------------------------------------------

def review_queue(actor: Actor, status: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """Appeals for reviewers, oldest first (pending ones are answered in the order they came).

    A privileged read of what citizens wrote: audited (ids only).
    """
    query = select(Appeal)
    if status is not None:
        query = query.where(Appeal.status == status)
    after = _id_cursor(cursor)
    if after is not None:
        query = query.where(Appeal.id > after)
    rows = list(db.session.scalars(query.order_by(Appeal.id).limit(limit + 1)))
    result = page(rows, limit, key=lambda appeal: [appeal.id])
    result["items"] = [appeal_view(appeal) for appeal in result["items"]]
    audit.record("appeal.queue_read", actor_type=actor.kind, actor_id=actor.id, object_type="appeal",
                 details={"ids": [item["id"] for item in result["items"]]})
    return result


def decide(actor: Actor, appeal_id: int, decision: str, points: int | None, reason: str | None) -> dict[str, Any]:
    """Approve (credit `points`, once) or reject (with a reason the citizen reads) a pending appeal."""
    now = utcnow()
    status = "approved" if decision == "approve" else "rejected"
    claimed = db.session.execute(
        update(Appeal)
        .where(Appeal.id == appeal_id, Appeal.status == "pending")
        .values(status=status, reason=reason, points=points if status == "approved" else None,
                decided_by=actor.subject, decided_at=now)
        .returning(Appeal.citizen_id, Appeal.scenario_code)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        appeal = db.session.get(Appeal, appeal_id)
        if appeal is None:
            raise appeal_not_found()
        raise AppError("appeal_already_decided", f"This appeal was already {appeal.status}.",
                       "该申诉已处理。", 409, details={"status": appeal.status})
    citizen_id, scenario_code = claimed.citizen_id, claimed.scenario_code
    if accounts.active_citizen(citizen_id) is None:
        raise AppError("account_closed", "The citizen's account is closed.", "该市民账户已注销。", 409)
    transfer_id = None
    if status == "approved":
        assert points is not None
        key = f"appeal:{appeal_id}"
        post_earnings([Earning(
            idempotency_key=key, citizen_id=citizen_id, scenario_code=scenario_code, amount=points, event_id=None,
            details={"source": "appeal", "appeal_id": appeal_id, "scenario_code": scenario_code,
                     "explanation_en": f"Credited after review of your appeal #{appeal_id}.",
                     "explanation_zh": f"经复核你的申诉（编号 {appeal_id}）后补记。"},
        )])
        transfer_id = transfer_id_for(key)
        db.session.execute(update(Appeal).where(Appeal.id == appeal_id).values(transfer_id=transfer_id)
                           .execution_options(synchronize_session=False))
    notifications.record(
        citizen_id, NOTICE_KIND,
        {"appeal_id": appeal_id, "status": status, "points": points if status == "approved" else None},
        f"appeal:{appeal_id}:decided",
    )
    audit.record(f"appeal.{status}", actor_type=actor.kind, actor_id=actor.id, object_type="appeal",
                 object_id=appeal_id,
                 details={"citizen_id": citizen_id, "points": points if status == "approved" else None,
                          "transfer_id": None if transfer_id is None else str(transfer_id)})
    appeal = db.session.get(Appeal, appeal_id, populate_existing=True)
    assert appeal is not None
    return appeal_view(appeal)


# --- account deletion ----------------------------------------------------------------

def close_for_deleted_account(citizen_id: int) -> int:
    """Erase what the citizen wrote and withdraw their pending appeals; returns how many were withdrawn."""
    db.session.execute(update(Appeal).where(Appeal.citizen_id == citizen_id).values(details_enc=None)
                       .execution_options(synchronize_session=False))
    withdrawn = db.session.execute(
        update(Appeal).where(Appeal.citizen_id == citizen_id, Appeal.status == "pending")
        .values(status="withdrawn", decided_by="citizen", decided_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(withdrawn.rowcount or 0)


def _id_cursor(cursor: str | None) -> int | None:
    values = decode_cursor(cursor, 1)
    if values is None:
        return None
    if type(values[0]) is not int:
        raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
    return values[0]
