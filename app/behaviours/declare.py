"""Self-declared behaviours (R4.2) and the citizen's own view of their behaviours.

A citizen may declare only what a scenario's version in force allows (`self_declared`), e.g. a
paperless e-invoice identified by its 20-digit 全电发票 number. A real-world item can be credited
once, by anyone, ever: the declaration claims it in `claimed_items` at once (a partner event for
the same item later loses at crediting, which claims in the same table). Scenarios that demand
review park the event as `pending_review`; the rest are credited by an rq job after commit.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, exists, or_, select, text

from app import jobs
from app.accounts.models import Citizen, Consent
from app.behaviours.ingest import FUTURE_SKEW, item_key
from app.behaviours.models import InboundEvent
from app.errors import AppError
from app.extensions import db
from app.models_base import utcnow
from app.pagination import decode_cursor, page
from app.partners.models import Partner
from scenarios import service as scenarios
from scenarios.engine import ActivityError, activity_to_json, validate_activity

_CLAIM = text(
    "INSERT INTO claimed_items (item_key, event_id, claimed_at) VALUES (:key, :event_id, :at) "
    "ON CONFLICT (item_key) DO NOTHING RETURNING item_key"
)


@dataclass(frozen=True)
class BehaviourView:
    id: int
    scenario: str
    source: str
    partner: str | None
    status: str
    reason: str | None
    occurred_at: datetime
    submitted_at: datetime
    activity: dict[str, Any]
    item_type: str | None
    document_number: str | None
    grams: int | None
    credited_grams: int | None
    capped_grams: int | None
    points: int | None


def declare_behaviour(citizen_id: int, scenario_code: str, activity: dict[str, Any],
                      occurred_at: datetime | None = None, evidence: dict[str, str] | None = None) -> BehaviourView:
    """Record a citizen's declaration; raise when the scenario, consent, data or item forbids it.

    The evidence (e.g. a receipt reference) is kept with the event for reviewers.
    """
    now = utcnow()
    occurred_at = occurred_at or now
    if not _has_consent(citizen_id, "privacy"):
        raise AppError("privacy_consent_required", "Consent to the privacy terms before recording behaviours.",
                       "记录行为前请先同意隐私条款。", 403)
    if occurred_at > now + FUTURE_SKEW:
        raise AppError("event_in_future", "occurred_at is in the future.", "发生时间不能晚于当前时间。", 400)
    max_age = current_app.config["EVENT_MAX_AGE_DAYS"]
    if occurred_at < now - timedelta(days=max_age):
        raise AppError("event_too_old", f"Behaviours older than {max_age} days cannot be declared.",
                       f"超过 {max_age} 天的行为无法申报。", 400)
    scenario = scenarios.scenario_by_code(scenario_code)
    version = scenarios.version_in_force(scenario_code, occurred_at) if scenario is not None else None
    if scenario is None or scenario.status != "live" or version is None:
        raise AppError("unknown_scenario", "No live scenario with this code was in force then.",
                       "该场景不存在或当时未生效。", 400)
    if not version.self_declared:
        raise AppError("self_declaration_not_allowed", "This scenario is reported by partners only.",
                       "该场景仅接受合作方上报，不能自行申报。", 400)
    if version.trajectory_consent and not _has_consent(citizen_id, "trajectory", scenario_code):
        raise AppError("trajectory_consent_required", "This scenario needs your separate consent to trip data.",
                       "该场景需要您单独同意使用出行轨迹信息。", 403)
    spec = scenarios.spec_for(version)
    try:
        normalised = validate_activity(spec, activity)
    except ActivityError as error:
        raise AppError("invalid_activity", f"activity.{error.field}: {error.reason}", "行为数据无效。", 400,
                       details={"field": error.field, "reason": error.reason})
    key = item_key(spec, normalised)
    citizen = db.session.get(Citizen, citizen_id)
    event = InboundEvent(
        source="citizen",
        partner_id=None,
        citizen_id=citizen_id,
        external_id=str(uuid.uuid4()),
        scenario_code=scenario_code,
        scenario_version_id=version.id,
        occurred_at=occurred_at,
        district=citizen.home_district if citizen is not None else None,
        activity=activity_to_json(normalised),
        item_key=key,
        evidence=evidence,
        status="pending_review" if version.review_required else "accepted",
        received_at=now,
    )
    db.session.add(event)
    db.session.flush()
    if key is not None and db.session.execute(_CLAIM, {"key": key, "event_id": event.id, "at": now}).first() is None:
        raise AppError("item_already_claimed", "This item has already been recorded.",
                       "该票据（物品）已被记录过，不能重复申报。", 409)
    if event.status == "accepted":
        jobs.enqueue_after_commit(jobs.credit_events, [event.id], job_id=f"credit-event-{event.id}")
    return _view(event, None)


def list_behaviours(citizen_id: int, cursor: str | None, limit: int) -> dict[str, Any]:
    """The citizen's behaviours, declared and partner-reported, newest first (cursor-paginated)."""
    query = (
        select(InboundEvent, Partner.code)
        .outerjoin(Partner, Partner.id == InboundEvent.partner_id)
        .where(InboundEvent.citizen_id == citizen_id)
        .order_by(InboundEvent.occurred_at.desc(), InboundEvent.id.desc())
        .limit(limit + 1)
    )
    after = decode_cursor(cursor, 2)
    if after is not None:
        try:
            at, event_id = datetime.fromisoformat(after[0]), int(after[1])
        except (TypeError, ValueError):
            raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
        query = query.where(
            or_(InboundEvent.occurred_at < at, and_(InboundEvent.occurred_at == at, InboundEvent.id < event_id))
        )
    views = [_view(event, partner_code) for event, partner_code in db.session.execute(query).all()]
    return page(views, limit, lambda view: [view.occurred_at.isoformat(), view.id])


def get_behaviour(citizen_id: int, event_id: int) -> BehaviourView:
    """One of the citizen's behaviours; another citizen's is simply not found (BOLA)."""
    row = db.session.execute(
        select(InboundEvent, Partner.code)
        .outerjoin(Partner, Partner.id == InboundEvent.partner_id)
        .where(InboundEvent.id == event_id, InboundEvent.citizen_id == citizen_id)
    ).first()
    if row is None:
        raise AppError("behaviour_not_found", "No such behaviour.", "未找到该行为记录。", 404)
    return _view(row[0], row[1])


def _has_consent(citizen_id: int, kind: str, scenario_code: str | None = None) -> bool:
    conditions = [Consent.citizen_id == citizen_id, Consent.kind == kind, Consent.withdrawn_at.is_(None)]
    if scenario_code is not None:
        conditions.append(Consent.scenario_code == scenario_code)
    return bool(db.session.scalar(select(exists().where(*conditions))))


def mask_tail(value: str) -> str:
    """Everything but the last 4 characters hidden: 12345678901234567890 -> ****************7890."""
    return "*" * max(len(value) - 4, 0) + value[-4:]


def _view(event: InboundEvent, partner_code: str | None) -> BehaviourView:
    activity = dict(event.activity or {})
    unique_field = event.item_key.split(":", 1)[0] if event.item_key else None
    if unique_field and isinstance(activity.get(unique_field), str):
        activity[unique_field] = mask_tail(activity[unique_field])
    return BehaviourView(
        id=event.id,
        scenario=event.scenario_code,
        source=event.source,
        partner=partner_code,
        status=event.status,
        reason=event.reason,
        occurred_at=event.occurred_at,
        submitted_at=event.received_at,
        activity=activity,
        item_type=activity.get("item_type"),
        document_number=activity.get("document_number"),
        grams=event.grams,
        credited_grams=event.credited_grams,
        capped_grams=event.capped_grams,
        points=event.points,
    )
