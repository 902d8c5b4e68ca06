"""HTTP routes for the personal carbon account and the ledger: parse, call the service, dump."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, citizen_required, role_required
from app.idempotency.service import IDEMPOTENCY_KEY_PARAMETER, idempotent
from app.ledger.account import account_summary
from app.ledger.reversal import ReversalResult, earning_transfer_id, reverse_credit
from app.ledger.schemas import (
    CarbonAccountSchema,
    LedgerPageSchema,
    LedgerReversalCreateSchema,
    LedgerReversalSchema,
)
from app.ledger.service import ledger_entries
from app.pagination import CursorArgs

blp = Blueprint("ledger", __name__, description="The personal carbon account and points ledger")


@blp.route("/me/account", methods=["GET"])
@citizen_required
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, CarbonAccountSchema)
def my_account() -> dict[str, Any]:
    """Points, CO2e avoided (today, month, year, all time), per scenario, the last 30 days, equivalents."""
    return account_summary(g.citizen_id)


@blp.route("/me/ledger", methods=["GET"])
@citizen_required
@blp.doc(security=BEARER_SECURITY)
@blp.arguments(CursorArgs, location="query", as_kwargs=True)
@blp.response(200, LedgerPageSchema)
def my_ledger(cursor: str | None, limit: int) -> dict[str, Any]:
    """Every point earned, spent, expired or reversed, newest first, each entry explaining itself."""
    return ledger_entries(g.citizen_id, cursor=cursor, limit=limit)


@blp.post("/staff/reversals")
@blp.doc(security=BEARER_SECURITY, parameters=[IDEMPOTENCY_KEY_PARAMETER])
@role_required("operator")
@idempotent
@blp.response(201, LedgerReversalSchema)
@blp.arguments(LedgerReversalCreateSchema)
def reverse(body: dict[str, Any]) -> ReversalResult:
    """Reverse a fraudulent credit (operators). What was already spent becomes debt, paid from future earnings.

    Send Idempotency-Key; a credit is reversed once (409 already_reversed).
    """
    transfer_id = body["transfer_id"] if "transfer_id" in body else earning_transfer_id(body["event_id"])
    return reverse_credit(transfer_id, body["reason"], g.actor)
