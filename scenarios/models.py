"""Methodologies and scenarios as versioned rows; `definition` holds the engine's JSON form."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column


class Methodology(db.Model):
    """One version of a methodology; every change after filing is a new row."""

    __tablename__ = "methodologies"
    __table_args__ = (
        UniqueConstraint("code", "version", name="uq_methodologies_code_version"),
        UniqueConstraint("filing_number", name="uq_methodologies_filing_number"),
        # At most one version of a code is being worked on (drafted, in review or approved) at a time.
        Index("uq_methodologies_open_code", "code", unique=True,
              postgresql_where=text("status IN ('draft', 'submitted', 'returned', 'approved')")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)  # personal | project
    title: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)  # {"zh": ..., "en": ...}
    # provisional (a seed) | draft | submitted | returned | approved | filed | retired (scenarios.registry)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    filing_number: Mapped[str | None] = mapped_column(String(32))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    # Registry metadata (NULL / empty for seeds): who drafted it, what it adds beyond the engine's document.
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    co_benefits: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict,
                                                        server_default=text("'{}'::jsonb"))
    documents: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list,
                                                            server_default=text("'[]'::jsonb"))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    filed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Scenario(db.Model):
    """A citizen-facing behaviour; its terms live in ScenarioVersion rows."""

    __tablename__ = "scenarios"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    category: Mapped[str] = mapped_column(String(4), nullable=False)  # 衣 食 住 行 用
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="live")  # live | paused | retired
    created_at: Mapped[datetime] = created_at_column()


class ScenarioVersion(db.Model):
    """The terms of a scenario from effective_from until the next version takes over."""

    __tablename__ = "scenario_versions"
    __table_args__ = (UniqueConstraint("scenario_id", "version", name="uq_scenario_versions_scenario_version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenarios.id"), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    methodology_id: Mapped[int] = mapped_column(ForeignKey("methodologies.id"), nullable=False)
    name: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    description: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    points_per_gram: Mapped[Decimal] = mapped_column(Numeric(12, 6), nullable=False, default=Decimal(1))
    cap_unit: Mapped[str] = mapped_column(String(32), nullable=False, default="events")
    cap_per_day: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    cap_per_month: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    data_sources: Mapped[list[str]] = mapped_column(ARRAY(String(16)), nullable=False, default=list)
    self_declared: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    review_required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    trajectory_consent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    effective_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
