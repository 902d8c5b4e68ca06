"""Ledger accounts and transfers (TigerBeetle's shape: posted/pending debits and credits per account).

A transfer is never updated or deleted, nor an account deleted (triggers refuse it); corrections
are new transfers.
A citizen's available balance (credits_posted - debits_posted - debits_pending) can never be
negative: the database enforces it with a CHECK.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Uuid,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column

ACCOUNT_KINDS = ("citizen", "issuance", "merchant", "expiry", "clawback", "reversal", "adjustment")


class LedgerAccount(db.Model):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name="amounts_non_negative",
        ),
        CheckConstraint(
            "kind <> 'citizen' OR credits_posted - debits_posted - debits_pending >= 0",
            name="citizen_available_non_negative",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(96), nullable=False, unique=True)  # "citizen:42", "issuance:metro_trip"
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    citizen_id: Mapped[int | None] = mapped_column(ForeignKey("citizens.id"), unique=True)
    debits_posted: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    debits_pending: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime] = created_at_column()


class LedgerTransfer(db.Model):
    """Moves `amount` points from the debit account to the credit account.

    `pending` transfers are holds; exactly one later transfer names a hold in `pending_id`
    to post or void it (a unique index guarantees once).
    """

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
        Index(
            "uq_ledger_transfers_pending_once",
            "pending_id",
            unique=True,
            postgresql_where=text("pending_id IS NOT NULL"),
        ),
        Index("ix_ledger_transfers_citizen_created", "citizen_id", text("created_at DESC"), text("id DESC")),
    )

    # uuid5 of the idempotency key: the primary key is what makes a key map to one transfer
    # (a second unique index on the key itself would only slow every insert down).
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)
    request_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # earn hold post void expire reverse adjust
    # No foreign keys to ledger_accounts and no index on either column. On the earn path the two
    # per-row foreign-key checks (each locking the account row FOR KEY SHARE) and the two indexes
    # cost ~45% of inserting 5,000 transfers, and nothing reads transfers by account. What the
    # foreign keys protected still holds: every writer takes the account ids from ledger_accounts
    # in the same transaction (post_earnings joins them, transfer/hold look them up), accounts can
    # never be deleted (trigger below), and check_invariants() reports any transfer naming an
    # account that does not exist.
    debit_account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    credit_account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    pending: Mapped[bool] = mapped_column(nullable=False, default=False)
    pending_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_transfers.id"))
    timeout_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Whose ledger page shows it. No foreign key: the citizen's account (a foreign key above)
    # already guarantees the citizen exists, and the check cost ~25% of a bulk insert.
    citizen_id: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    # The explanation shown with the entry is the shared part (LedgerExplanation, if any) overlaid
    # with this transfer's own details; see app.ledger.service.transfer_explanation.
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # No foreign key (a per-row check on the earn path); explanations are never deleted or changed
    # (trigger below) and check_invariants() reports a reference to a missing one.
    explanation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = created_at_column()


class LedgerExplanation(db.Model):
    """The part of an earning's explanation that thousands of earnings share, stored once.

    E.g. scenario and methodology with their versions, the formula, the parameters it used and the
    points rate: ~60% of a metro trip's explanation, identical for every trip credited under that
    scenario version. The id is uuid5 of the canonical JSON, so writing it again changes nothing.
    """

    __tablename__ = "ledger_explanations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = created_at_column()


APPEND_ONLY_FUNCTION = DDL(
    """
    CREATE OR REPLACE FUNCTION ledger_transfers_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'ledger_transfers is append-only (%% refused)', TG_OP USING ERRCODE = 'restrict_violation';
    END;
    $$ LANGUAGE plpgsql
    """
)
APPEND_ONLY_TRIGGER = DDL(
    """
    CREATE TRIGGER ledger_transfers_append_only
    BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfers_append_only()
    """
)
EXPLANATIONS_APPEND_ONLY_FUNCTION = DDL(
    """
    CREATE OR REPLACE FUNCTION ledger_explanations_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'ledger_explanations is append-only (%% refused)', TG_OP USING ERRCODE = 'restrict_violation';
    END;
    $$ LANGUAGE plpgsql
    """
)
EXPLANATIONS_APPEND_ONLY_TRIGGER = DDL(
    """
    CREATE TRIGGER ledger_explanations_append_only
    BEFORE UPDATE OR DELETE ON ledger_explanations
    FOR EACH ROW EXECUTE FUNCTION ledger_explanations_append_only()
    """
)
UNDELETABLE_ACCOUNTS_FUNCTION = DDL(
    """
    CREATE OR REPLACE FUNCTION ledger_accounts_undeletable() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'ledger accounts are never deleted' USING ERRCODE = 'restrict_violation';
    END;
    $$ LANGUAGE plpgsql
    """
)
UNDELETABLE_ACCOUNTS_TRIGGER = DDL(
    """
    CREATE TRIGGER ledger_accounts_undeletable
    BEFORE DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_undeletable()
    """
)
event.listen(LedgerTransfer.__table__, "after_create", APPEND_ONLY_FUNCTION)
event.listen(LedgerTransfer.__table__, "after_create", APPEND_ONLY_TRIGGER)
event.listen(LedgerExplanation.__table__, "after_create", EXPLANATIONS_APPEND_ONLY_FUNCTION)
event.listen(LedgerExplanation.__table__, "after_create", EXPLANATIONS_APPEND_ONLY_TRIGGER)
event.listen(LedgerAccount.__table__, "after_create", UNDELETABLE_ACCOUNTS_FUNCTION)
event.listen(LedgerAccount.__table__, "after_create", UNDELETABLE_ACCOUNTS_TRIGGER)
