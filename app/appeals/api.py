"""HTTP routes for appeals: the citizen's form and list, the reviewers' queue and decision."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from app.appeals import service
from app.appeals.schemas import (
    AppealDecisionSchema,
    AppealFileSchema,
    AppealPageSchema,
    AppealReviewListArgs,
    AppealReviewPageSchema,
    AppealReviewSchema,
    AppealSchema,
)
from app.auth.guard import BEARER_SECURITY, citizen_required, role_required
from app.idempotency.service import IDEMPOTENCY_KEY_PARAMETER, idempotent
from app.pagination import CursorArgs

blp = Blueprint("appeals", __name__, description="Appeals for a missing credit, and their review")


@blp.post("/me/appeals")
@blp.doc(security=BEARER_SECURITY, parameters=[IDEMPOTENCY_KEY_PARAMETER])
@citizen_required
@idempotent
@blp.response(201, AppealSchema)
@blp.arguments(AppealFileSchema)
def file_appeal(body: dict[str, Any]) -> dict[str, Any]:
    """Appeal a credit I expected and did not get; reviewers answer it. Send Idempotency-Key."""
    return service.file_appeal(g.citizen_id, body["scenario_code"], body["occurred_at"], body["partner_reference"],
                               body["description"], body["einvoice_number"])


@blp.get("/me/appeals")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, AppealPageSchema)
@citizen_required
@blp.arguments(CursorArgs, location="query", as_kwargs=True)
def my_appeals(cursor: str | None, limit: int) -> dict[str, Any]:
    """My appeals, newest first: status and, once decided, the reviewer's reason."""
    return service.my_appeals(g.citizen_id, cursor, limit)


@blp.get("/staff/appeals")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, AppealReviewPageSchema)
@role_required("reviewer", "operator")
@blp.arguments(AppealReviewListArgs, location="query", as_kwargs=True)
def review_queue(status: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """Appeals to review, oldest first; filter by status (pending for the queue)."""
    return service.review_queue(g.actor, status, cursor, limit)


@blp.post("/staff/appeals/<id:appeal_id>/decision")
@blp.doc(security=BEARER_SECURITY, parameters=[IDEMPOTENCY_KEY_PARAMETER])
@role_required("reviewer", "operator")
@idempotent
@blp.response(200, AppealReviewSchema)
@blp.arguments(AppealDecisionSchema)
def decide(body: dict[str, Any], appeal_id: int) -> dict[str, Any]:
    """Approve (credits the points once, through the ledger) or reject (the reason is shown to the citizen).

    A second decision on the same appeal is a 409; a retry with the same Idempotency-Key replays the first answer.
    """
    return service.decide(g.actor, appeal_id, body["decision"], body["points"], body["reason"])
