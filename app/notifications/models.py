"""A citizen's notifications. One row per dedupe key, so a job that reruns never notifies twice."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        # The list (newest first) and the unread count both read one citizen's rows through this.
        Index("ix_notifications_citizen_id_desc", "citizen_id", text("id DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)  # points_expiring, badge_earned, ...
    # Ids, amounts, dates and codes only: the mini-app renders the text. Never personal data.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # What makes the notification once-only, e.g. "points_expiring:lot:42" or "badge:7:citizen:3".
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
