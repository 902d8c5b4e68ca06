"""Inbound events and the per-citizen usage that caps are enforced against."""
from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    Uuid,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column

# An event's life: accepted (or pending_review) -> one final outcome.
FINAL_STATUSES = (
    "credited",  # credited in full or in part (capped_grams says how much was over a cap)
    "capped",  # entirely over a cap: recorded, nothing credited
    "unknown_account",  # the partner's account reference is bound to nobody
    "no_consent",  # the citizen has not (or no longer) consented
    "duplicate_item",  # the same real-world item (e.g. invoice number) was already credited
    "flagged",  # held by an anti-fraud rule for review
    "rejected",  # refused (e.g. no scenario version in force at that time, review rejected)
)


class EventBatch(db.Model):
    __tablename__ = "event_batches"
    __table_args__ = (
        Index("ix_event_batches_uncredited", "received_at", postgresql_where=text("completed_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), nullable=False, index=True)
    received_at: Mapped[datetime] = created_at_column()
    event_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    accepted_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duplicate_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class InboundEvent(db.Model):
    """A behaviour reported by a partner or declared by a citizen, and its outcome."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        Index(
            "uq_inbound_events_partner_external",
            "partner_id",
            "external_id",
            unique=True,
            postgresql_where=text("partner_id IS NOT NULL"),
        ),
        Index(
            "uq_inbound_events_citizen_external",
            "citizen_id",
            "external_id",
            unique=True,
            postgresql_where=text("partner_id IS NULL"),
        ),
        Index("ix_inbound_events_batch", "batch_id"),
        Index("ix_inbound_events_citizen_occurred", "citizen_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # No foreign keys on this table: each cost a per-row trigger and lookup on the ingestion hot
    # path (together ~150 ms of a 5,000-event INSERT of ~350 ms) and protects nothing the code does
    # not already guarantee: batches, partners and scenario versions are never deleted (partners
    # are suspended, versions are immutable), and ingestion writes the batch it has just inserted,
    # the authenticated partner and a version it has just read.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    partner_id: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # partner | citizen
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    account_ref_idx: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Set at ingestion for a bound reference whose citizen consents to the privacy terms; crediting
    # checks the citizen and every consent again and clears it when they fail (nothing is recorded
    # against a citizen who has not consented).
    # No foreign key either (~20 ms of every 5,000 events): it is taken from partner_bindings,
    # whose own foreign key guarantees the citizen, or from the signed-in citizen, and citizens
    # are never deleted (an account is closed by its status).
    citizen_id: Mapped[int | None] = mapped_column(BigInteger)
    scenario_code: Mapped[str] = mapped_column(String(64), nullable=False)
    scenario_version_id: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    district: Mapped[str | None] = mapped_column(String(32))
    activity: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    item_key: Mapped[str | None] = mapped_column(String(160))
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # what a citizen attached to a declaration
    # accepted | pending_review | one of FINAL_STATUSES
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="accepted")
    reason: Mapped[str | None] = mapped_column(String(255))
    grams: Mapped[int | None] = mapped_column(BigInteger)  # calculated before caps
    credited_grams: Mapped[int | None] = mapped_column(BigInteger)
    capped_grams: Mapped[int | None] = mapped_column(BigInteger)
    points: Mapped[int | None] = mapped_column(BigInteger)
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    received_at: Mapped[datetime] = created_at_column()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Crediting rewrites every event once (status, grams, points, ...). None of the columns it changes
# is indexed (citizen_id is resolved at ingestion and only changes for the rare event refused for
# consent), so when the page has room for the new version the rewrite is a HOT update that touches
# no index. 60% of each page is left free at insertion for it: the rewritten event is ~25% larger
# (grams, points, transfer id, processed_at), and with half the page free ~12% of the rewrites no
# longer fit and wrote four index entries each (bench/ingest.py; migration 0010).
INBOUND_EVENTS_FILLFACTOR = 40
event.listen(
    InboundEvent.__table__,
    "after_create",
    DDL(f"ALTER TABLE inbound_events SET (fillfactor = {INBOUND_EVENTS_FILLFACTOR})"),
)


class RejectedEvent(db.Model):
    """An event refused at ingestion (bad signature aside): kept so nothing a partner sent is lost."""

    __tablename__ = "rejected_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("event_batches.id"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)  # index in the batch
    external_id: Mapped[str | None] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class ClaimedItem(db.Model):
    """A real-world item (e.g. an e-invoice number) that can be credited once, by anyone, ever."""

    __tablename__ = "claimed_items"

    item_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    # No foreign key (a per-row check and row lock on every claim in a batch): the claim is made by
    # the code that holds the event (crediting, or the declaration that just inserted it), and
    # events are never deleted.
    event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    claimed_at: Mapped[datetime] = created_at_column()


class DailyUsage(db.Model):
    """What a citizen has used of a scenario on one Asia/Shanghai day: caps and fractional points read it."""

    __tablename__ = "daily_usage"

    # No foreign keys: crediting creates these rows ~5,000 at a time, where two per-row foreign-key
    # triggers cost more than the insert itself; citizens and scenarios are never deleted (closed
    # and retired by status) and crediting only writes a citizen and scenario it has just read.
    citizen_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scenario_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False, default=Decimal(0))
    events: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    grams: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # credited grams
    points: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


# Crediting adds to a citizen's day row with every batch that has events of that day (several a
# day). With full pages, the updated row version moved to another page and every index got a new
# entry: only ~45% of the updates were HOT in bench/ingest.py. 30% free room keeps them on the page.
DAILY_USAGE_FILLFACTOR = 70
event.listen(
    DailyUsage.__table__,
    "after_create",
    DDL(f"ALTER TABLE daily_usage SET (fillfactor = {DAILY_USAGE_FILLFACTOR})"),
)


class MonthlyUsage(db.Model):
    """The monthly twin of DailyUsage, locked with it so monthly caps hold under concurrency."""

    __tablename__ = "monthly_usage"

    citizen_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # no foreign keys: see DailyUsage
    scenario_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # first day of the month
    quantity: Mapped[Decimal] = mapped_column(Numeric(20, 6), nullable=False, default=Decimal(0))
    grams: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
