"""Merchants, stores, merchant staff (a citizen bound to one merchant) and staff invitations."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column

MERCHANT_STATUSES = ("active", "suspended")
MERCHANT_ROLES = ("merchant_staff", "merchant_admin")


class Merchant(db.Model):
    __tablename__ = "merchants"
    __table_args__ = (CheckConstraint("status IN ('active', 'suspended')", name="status_known"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(128), nullable=False)
    name_en: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    created_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))  # None: CLI/demo
    created_at: Mapped[datetime] = created_at_column()


class Store(db.Model):
    __tablename__ = "merchant_stores"
    __table_args__ = (CheckConstraint("status IN ('active', 'closed')", name="status_known"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    district: Mapped[str] = mapped_column(String(32), nullable=False)  # app.accounts.districts code
    address: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    created_at: Mapped[datetime] = created_at_column()


class MerchantStaff(db.Model):
    """A citizen's account acting for one merchant; a citizen is active staff of one merchant at most."""

    __tablename__ = "merchant_staff"
    __table_args__ = (
        CheckConstraint("role IN ('merchant_staff', 'merchant_admin')", name="role_known"),
        CheckConstraint("status IN ('active', 'removed')", name="status_known"),
        Index("uq_merchant_staff_active_citizen", "citizen_id", unique=True,
              postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), nullable=False, index=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    label: Mapped[str | None] = mapped_column(String(64))  # what the merchant calls them, e.g. "收银台2"
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    created_at: Mapped[datetime] = created_at_column()
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MerchantStaffStore(db.Model):
    """The stores a staff member may redeem coupons at."""

    __tablename__ = "merchant_staff_stores"

    staff_id: Mapped[int] = mapped_column(ForeignKey("merchant_staff.id"), primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("merchant_stores.id"), primary_key=True, index=True)


class StaffInvitation(db.Model):
    """A one-time code that binds the citizen who redeems it as staff; only its keyed hash is stored."""

    __tablename__ = "merchant_staff_invitations"
    __table_args__ = (CheckConstraint("role IN ('merchant_staff', 'merchant_admin')", name="role_known"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    store_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), nullable=False)
    label: Mapped[str | None] = mapped_column(String(64))
    code_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)  # actor subject, "staff:3"
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("merchant_staff.id"))
