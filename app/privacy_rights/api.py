"""HTTP routes for the data export and account deletion: parse, call the service, dump."""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, g
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, bearer_claims, citizen_required
from app.errors import AppError
from app.extensions import limiter
from app.privacy_rights import deletion, export
from app.privacy_rights.schemas import (
    PrivacyRightsDeletionConfirmSchema,
    PrivacyRightsDeletionReceiptSchema,
    PrivacyRightsDeletionRequestSchema,
    PrivacyRightsExportSchema,
)

blp = Blueprint("privacy_rights", __name__, description="My personal data: export (download) and account deletion")


def _export_limit() -> str:
    return current_app.config["RATELIMIT_EXPORT"]


@blp.get("/me/export")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, PrivacyRightsExportSchema, headers={
    "Content-Disposition": {"description": "attachment; filename=carbon-account-<id>.json",
                            "schema": {"type": "string"}}})
@citizen_required
@limiter.limit(_export_limit)
def export_my_data() -> Response:
    """Download all my personal data as a JSON file (rate limited: it is heavy)."""
    document = export.export_account(g.citizen_id)
    body = json.dumps(document, ensure_ascii=False, indent=1)
    response = current_app.response_class(body, status=200, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="carbon-account-{g.citizen_id}.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.post("/me/deletion-request")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, PrivacyRightsDeletionRequestSchema)
@citizen_required
def request_deletion() -> dict[str, Any]:
    """Step 1 of deleting my account: what happens to my points, coupons and data, and a confirmation
    token valid for 10 minutes. Asking again replaces the token."""
    return deletion.request_deletion(g.citizen_id)


def citizen_even_if_deleted(view: Callable[..., Any]) -> Callable[..., Any]:
    """citizen_required, except that the account may already be closed: the confirmation's retry
    gets its receipt (the service refuses a closed account anything else)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        claims = bearer_claims()
        if claims.role != "citizen" or claims.citizen_id is None:
            raise AppError("forbidden", "This is for citizens only.", "仅限市民用户使用。", 403)
        g.citizen_id = claims.citizen_id
        g.rate_limit_subject = claims.subject
        return view(*args, **kwargs)

    return wrapper


@blp.post("/me/deletion")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, PrivacyRightsDeletionReceiptSchema)
@citizen_even_if_deleted
@blp.arguments(PrivacyRightsDeletionConfirmSchema)
def confirm_deletion(body: dict[str, Any]) -> dict[str, Any]:
    """Step 2: delete my account with the confirmation token. Sending it again returns the same receipt;
    every other call with my tokens is refused from then on."""
    return deletion.confirm_deletion(g.citizen_id, body["confirmation_token"])
