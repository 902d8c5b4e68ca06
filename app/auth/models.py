"""Sign-in identities, JWT signing keys and refresh-token families."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, LargeBinary, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column


class Identity(db.Model):
    """A provider account (WeChat openid, Alipay user id, Suishenban sub) linked to a citizen."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("provider", "subject_idx", name="uq_identities_provider_subject"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False, index=True)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)  # wechat | alipay | suishenban
    subject_idx: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    subject_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    unionid_idx: Mapped[bytes | None] = mapped_column(LargeBinary, index=True)
    created_at: Mapped[datetime] = created_at_column()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SigningKey(db.Model):
    """Our JWT signing keys; `kid` in a token header is looked up here, the algorithm is pinned here."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), nullable=False)
    public_pem: Mapped[str] = mapped_column(Text, nullable=False)
    private_enc: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshToken(db.Model):
    """Opaque rotating refresh tokens; reuse of a used token revokes its whole family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False, index=True)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
