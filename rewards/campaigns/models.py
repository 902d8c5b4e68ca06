"""Campaigns (BRIEF R5.3): time-boxed multipliers and bonuses with a points budget, and what each consumed."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, Numeric, String, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column, utcnow

CAMPAIGN_STATUSES = ("draft", "live", "paused", "ended")


class Campaign(db.Model):
    """Extra points on credited events in a time window, for some scenarios and districts, until the budget is used.

    `scenario_codes` / `districts` NULL mean every scenario / every district. `used_points` only
    ever grows, by the crediting job, and the CHECK keeps it within the budget whatever the
    concurrency (the service also locks the row before it adds).
    """

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="window_ordered"),
        CheckConstraint("multiplier >= 1 AND multiplier <= 10", name="multiplier_range"),
        CheckConstraint("bonus_points >= 0", name="bonus_non_negative"),
        CheckConstraint("multiplier > 1 OR bonus_points > 0", name="gives_something"),
        CheckConstraint("used_points >= 0 AND used_points <= budget_points", name="within_budget"),
        CheckConstraint("status IN ('draft', 'live', 'paused', 'ended')", name="status_known"),
        # Crediting reads the campaigns overlapping a batch's time range: a tiny table, but keep it a range probe.
        Index("ix_campaigns_window", "ends_at", "starts_at", postgresql_where=text("status <> 'draft'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    title: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)  # {"zh": ..., "en": ...}
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    scenario_codes: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    districts: Mapped[list[str] | None] = mapped_column(ARRAY(String(32)))
    multiplier: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, default=Decimal(1))
    bonus_points: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    budget_points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used_points: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="draft")
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)  # actor subject, e.g. "staff:3"
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class CampaignAward(db.Model):
    """The extra points one campaign gave one event: the key that makes a rerun consume nothing twice.

    No foreign key to the event: the crediting hot path inserts these set-based, and events may be
    partitioned by day later (DESIGN §Ingestion path); the event id is the earn's idempotency key anyway.
    """

    __tablename__ = "campaign_awards"
    __table_args__ = (CheckConstraint("points > 0", name="points_positive"),)

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # one campaign per event, at most
    campaign_id: Mapped[int] = mapped_column(db.ForeignKey("campaigns.id"), nullable=False, index=True)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    awarded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), default=utcnow
    )
