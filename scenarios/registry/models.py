"""The registry's own rows: each decision taken on a methodology version, and the filing-number counter."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column

# What a staff member did to a methodology version (the history the console shows).
DECISION_ACTIONS = ("drafted", "edited", "submitted", "commented", "changes_requested", "approved", "filed",
                    "retired", "revised")


class MethodologyDecision(db.Model):
    """One step in a methodology version's history; never updated or deleted."""

    __tablename__ = "methodology_decisions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    methodology_id: Mapped[int] = mapped_column(ForeignKey("methodologies.id"), nullable=False, index=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), nullable=False)
    action: Mapped[str] = mapped_column(String(24), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = created_at_column()


class FilingCounter(db.Model):
    """The last filing number given out in a year (SHCI-M-<year>-<last>); bumped by an atomic upsert."""

    __tablename__ = "methodology_filing_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, nullable=False)
