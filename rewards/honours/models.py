"""Honours: badge and level definitions (data, seeded from badges.yaml), awards, and the citizen's
honours profile (nickname, leaderboard opt-in). Data only; the rules live in rules.py/service.py."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column, utcnow


class HonourBadge(db.Model):
    """A badge and the rule that earns it (`rule_type` + validated `params`, see rules.py)."""

    __tablename__ = "honour_badges"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_type: Mapped[str] = mapped_column(String(32), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    name_zh: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str] = mapped_column(String(64), nullable=False)
    description_zh: Mapped[str] = mapped_column(String(255), nullable=False)
    description_en: Mapped[str] = mapped_column(String(255), nullable=False)
    icon: Mapped[str] = mapped_column(String(64), nullable=False)
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # A badge dropped from the YAML is deactivated, never deleted: awards of it stay.
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class HonourLevel(db.Model):
    """A title reached at `threshold_grams` of cumulative credited CO2e (绿芽, 绿叶, 绿树, 森林)."""

    __tablename__ = "honour_levels"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    threshold_grams: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    name_zh: Mapped[str] = mapped_column(String(32), nullable=False)
    name_en: Mapped[str] = mapped_column(String(32), nullable=False)
    icon: Mapped[str] = mapped_column(String(64), nullable=False)


class CitizenHonour(db.Model):
    """A badge a citizen holds: awarded once (the primary key), by a rule or by a grant (荣誉兑换)."""

    __tablename__ = "citizen_honours"
    __table_args__ = (Index("ix_citizen_honours_badge", "badge_code"),)

    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), primary_key=True)
    badge_code: Mapped[str] = mapped_column(ForeignKey("honour_badges.code"), primary_key=True)
    awarded_at: Mapped[datetime] = created_at_column()
    source: Mapped[str] = mapped_column(String(64), nullable=False)  # "rule" or e.g. "offer:12"


class HonourProfile(db.Model):
    """What a citizen chose to show: a nickname (certificate, leaderboard) and the leaderboard opt-in.

    There is no real name in the system and the phone is never shown, so the nickname is the only
    name honours use; without one the certificate says 低碳市民.
    """

    __tablename__ = "honour_profiles"
    __table_args__ = (
        Index("ix_honour_profiles_opted_in", "citizen_id", postgresql_where=text("leaderboard_opt_in")),
    )

    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), primary_key=True)
    nickname: Mapped[str | None] = mapped_column(String(20))
    leaderboard_opt_in: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
