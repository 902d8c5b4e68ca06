"""Partners, their signing secrets, one-time binding codes and account bindings."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column

PARTNER_KINDS = ("metro", "bus", "bikeshare", "recycling", "einvoice")


class Partner(db.Model):
    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # e.g. "shmetro"
    name_zh: Mapped[str] = mapped_column(String(128), nullable=False)
    name_en: Mapped[str] = mapped_column(String(128), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # one of PARTNER_KINDS
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")  # active | suspended
    created_at: Mapped[datetime] = created_at_column()


class PartnerSecret(db.Model):
    """An HMAC signing secret; rotated secrets overlap until the old one's expires_at."""

    __tablename__ = "partner_secrets"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), nullable=False, index=True)
    key_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BindingCode(db.Model):
    """A one-time code a citizen types into the partner's app; only its hash is stored."""

    __tablename__ = "binding_codes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False, index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), nullable=False)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PartnerBinding(db.Model):
    """The partner's own account reference for a citizen: events name it, we map it to the citizen."""

    __tablename__ = "partner_bindings"
    __table_args__ = (
        Index(
            "uq_partner_bindings_active_ref",
            "partner_id",
            "account_ref_idx",
            unique=True,
            postgresql_where=text("unbound_at IS NULL"),
        ),
        Index(
            "uq_partner_bindings_active_citizen",
            "partner_id",
            "citizen_id",
            unique=True,
            postgresql_where=text("unbound_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), nullable=False)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False, index=True)
    account_ref_idx: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    account_ref_enc: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    bound_at: Mapped[datetime] = created_at_column()
    unbound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
