"""Fraud reversal (issue 3 point 9): take a fraudulent credit back without a balance going negative.

What the citizen still has is taken back at once (citizen -> "reversal:fraud", kind "reverse"),
first from the lot the credit went into, then from their other free points, first to expire first.
What they had already spent (or holds for an unredeemed coupon) becomes debt: the citizen's
clawback account "clawback:<citizen id>" is debited (clawback -> "reversal:fraud", kind "debt"),
so the reversal account always receives the whole credit and every transfer balances. Later
earnings pay the debt first (app.ledger.service.post_earnings: citizen -> clawback, kind "repay").
The outstanding debt is the clawback account's debits minus its credits, never below zero.

A transfer is reversed at most once: ledger_reversals' primary key is the reversed transfer, and
the work runs with the citizen's account locked, so a concurrent second attempt sees the first.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from app.audit.service import record as audit
from app.auth.guard import Actor
from app.errors import AppError
from app.extensions import db
from app.ledger import lots
from app.ledger.models import LedgerReversal, LedgerTransfer
from app.ledger.service import (
    _LOCK_ACCOUNTS,
    _account_ids,
    _write_transfer,
    citizen_account_code,
    clawback_account_code,
    transfer_id_for,
)

REVERSAL_ACCOUNT = "reversal:fraud"
# What may be reversed: points credited to a citizen by these kinds of transfer.
REVERSIBLE_KINDS = ("earn", "adjust", "bonus", "campaign")


@dataclass(frozen=True)
class ReversalResult:
    transfer_id: uuid.UUID  # the credit reversed
    citizen_id: int
    amount: int  # the credit's amount
    recovered: int  # taken back from the citizen's points now
    debt: int  # already spent: owed, paid from future earnings
    reason: str
    actor: str
    created_at: datetime


def transfer_not_found() -> AppError:
    return AppError("transfer_not_found", "No such credit.", "未找到该笔积分入账。", 404)


def earning_transfer_id(event_id: int) -> uuid.UUID:
    """The ledger transfer that credited a behaviour event (crediting keys earnings "earn:event:<id>")."""
    return transfer_id_for(f"earn:event:{event_id}")


def reverse_credit(transfer_id: uuid.UUID, reason: str, actor: Actor | str) -> ReversalResult:
    """Reverse a fraudulent credit to a citizen; once only (409 already_reversed after that)."""
    subject = actor.subject if isinstance(actor, Actor) else actor
    db.session.flush()
    credit = db.session.get(LedgerTransfer, transfer_id)
    citizen_id = _credited_citizen(credit)
    if credit is None or citizen_id is None:
        raise transfer_not_found()
    if credit.kind not in REVERSIBLE_KINDS or credit.pending or credit.pending_id is not None:
        raise AppError("not_reversible", "Only a posted credit of points can be reversed.",
                       "只能冲正已入账的积分。", 409)

    citizen_code, clawback_code = citizen_account_code(citizen_id), clawback_account_code(citizen_id)
    ids = _account_ids([citizen_code, clawback_code, REVERSAL_ACCOUNT])
    with db.session.begin_nested():
        db.session.execute(_LOCK_ACCOUNTS, {"ids": sorted(ids.values())}).all()
        if db.session.get(LedgerReversal, transfer_id, populate_existing=True) is not None:
            raise AppError("already_reversed", "This credit was already reversed.", "该笔积分已冲正。", 409)
        available = db.session.execute(
            text("SELECT credits_posted - debits_posted - debits_pending FROM ledger_accounts WHERE id = :id"),
            {"id": ids[citizen_code]},
        ).scalar_one()
        recovered = min(credit.amount, available)
        debt = credit.amount - recovered
        details = {"reversed_transfer_id": str(transfer_id), "reason": reason}
        if recovered:
            _write_transfer(
                f"reverse:{transfer_id}", citizen_code, REVERSAL_ACCOUNT, recovered, "reverse",
                pending=False, citizen_id=citizen_id, details=details,
                request_hash=_hash(transfer_id, recovered), timeout_at=None,
                prefer_lot=lots.expiry_for(lots.shanghai_day(credit.created_at)),
            )
        if debt:
            _write_transfer(
                f"reverse:{transfer_id}:debt", clawback_code, REVERSAL_ACCOUNT, debt, "debt",
                pending=False, citizen_id=citizen_id, details={**details, "debt": debt},
                request_hash=_hash(transfer_id, debt), timeout_at=None,
            )
        reversal = LedgerReversal(
            transfer_id=transfer_id, citizen_id=citizen_id, amount=credit.amount, recovered=recovered, debt=debt,
            reason=reason, actor=subject,
        )
        db.session.add(reversal)
        db.session.flush()
    kind, _, ident = subject.partition(":")
    audit(
        "ledger.credit_reversed",
        actor_type=kind or subject,
        actor_id=ident or None,
        object_type="ledger_transfer",
        object_id=str(transfer_id),
        # ids and amounts only: the operator's free-text reason stays in ledger_reversals
        details={"citizen_id": citizen_id, "amount": credit.amount, "recovered": recovered, "debt": debt},
    )
    return _result(reversal)


def reversal_of(transfer_id: uuid.UUID) -> ReversalResult | None:
    found = db.session.get(LedgerReversal, transfer_id)
    return None if found is None else _result(found)


def outstanding_debt(citizen_id: int) -> int:
    """What the citizen still owes from reversals (0 when nothing)."""
    owed = db.session.scalar(
        text("SELECT debits_posted - credits_posted FROM ledger_accounts WHERE code = :code"),
        {"code": clawback_account_code(citizen_id)},
    )
    return int(owed or 0)


def _credited_citizen(credit: LedgerTransfer | None) -> int | None:
    if credit is None:
        return None
    return db.session.scalar(
        text("SELECT citizen_id FROM ledger_accounts WHERE id = :id AND kind = 'citizen'"),
        {"id": credit.credit_account_id},
    )


def _hash(transfer_id: uuid.UUID, amount: int) -> bytes:
    return hashlib.sha256(f"reverse\n{transfer_id}\n{amount}".encode()).digest()


def _result(reversal: LedgerReversal) -> ReversalResult:
    return ReversalResult(
        transfer_id=reversal.transfer_id, citizen_id=reversal.citizen_id, amount=reversal.amount,
        recovered=reversal.recovered, debt=reversal.debt, reason=reversal.reason, actor=reversal.actor,
        created_at=reversal.created_at,
    )
