"""Ledger accounts and transfers (TigerBeetle's shape: posted/pending debits and credits per account).

A transfer is never updated or deleted, nor an account deleted (triggers refuse it); corrections
are new transfers.
A citizen's available balance (credits_posted - debits_posted - debits_pending) can never be
negative: the database enforces it with a CHECK.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column

# "honour": points a citizen exchanged for a badge (荣誉兑换), one account per badge; spent, never paid out.
ACCOUNT_KINDS = ("citizen", "issuance", "merchant", "expiry", "clawback", "reversal", "adjustment", "honour")


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
        # The few citizens' clawback accounts ("clawback:<citizen id>"), read on every earnings
        # batch to find debts to pay first. The predicate names only `kind`, which never changes,
        # so balance updates stay HOT.
        Index("ix_ledger_accounts_clawback_code", "code", postgresql_where=text("kind = 'clawback'")),
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


class LedgerLot(db.Model):
    """Points a citizen received that expire together: one lot per (citizen, expiry day).

    Earnings add to the lot of their expiry day with one upsert per batch, and spending takes from
    the lot expiring first: with one lot per day, "oldest first" is exactly "first to expire first".
    For each citizen: sum(remaining) = available and sum(held) = debits_pending (check_invariants).
    """

    __tablename__ = "ledger_lots"
    __table_args__ = (
        UniqueConstraint("citizen_id", "expires_on", name="uq_ledger_lots_citizen_id_expires_on"),
        CheckConstraint(
            "credited >= 0 AND remaining >= 0 AND held >= 0 AND expired >= 0", name="amounts_non_negative"
        ),
        Index("ix_ledger_lots_expires_on", "expires_on"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # No foreign key (a per-row check on the earn path): the citizen's ledger account has one.
    citizen_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_on: Mapped[date] = mapped_column(Date, nullable=False)  # the last Asia/Shanghai day they count
    credited: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # all that went in
    remaining: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # free to spend
    held: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # allocated to open holds
    expired: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # expired so far
    created_at: Mapped[datetime] = created_at_column()


class LedgerHoldAllocation(db.Model):
    """Which lots a hold took its points from: a void gives exactly these back, a post consumes them."""

    __tablename__ = "ledger_hold_allocations"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    hold_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transfers.id"), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("ledger_lots.id"), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)


class LedgerReversal(db.Model):
    """A fraudulent credit taken back. The primary key is the credit: a transfer is reversed at most once.

    `recovered` points came back from the citizen's available points; `debt` had already been spent
    and is owed in the citizen's clawback account, paid first from future earnings.
    """

    __tablename__ = "ledger_reversals"
    __table_args__ = (
        CheckConstraint("recovered >= 0 AND debt >= 0 AND recovered + debt = amount", name="amounts_add_up"),
    )

    transfer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transfers.id"), primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    recovered: Mapped[int] = mapped_column(BigInteger, nullable=False)
    debt: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False)
    actor: Mapped[str] = mapped_column(String(64), nullable=False)  # "staff:3", "console"
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
