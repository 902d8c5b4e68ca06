"""Citizens and their consents. Personal data is encrypted; lookups go through blind indexes."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, LargeBinary, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column


class Citizen(db.Model):
    __tablename__ = "citizens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")  # active | closed
    home_district: Mapped[str | None] = mapped_column(String(32))
    phone_idx: Mapped[bytes | None] = mapped_column(LargeBinary, unique=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_version: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=1)
    created_at: Mapped[datetime] = created_at_column()
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Consent(db.Model):
    """A consent grant; withdrawal sets withdrawn_at (history is kept, PIPL Art. 15)."""

    __tablename__ = "consents"
    __table_args__ = (
        Index(
            "uq_consents_active",
            "citizen_id",
            "kind",
            "scenario_code",
            unique=True,
            postgresql_where=text("withdrawn_at IS NULL"),
            postgresql_nulls_not_distinct=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # privacy | trajectory
    scenario_code: Mapped[str | None] = mapped_column(String(64))  # trajectory consent is per scenario
    terms_version: Mapped[str] = mapped_column(String(32), nullable=False)
    granted_at: Mapped[datetime] = created_at_column()
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
