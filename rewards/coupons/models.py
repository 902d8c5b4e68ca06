"""Offers, per-citizen claim counters, coupons and their redemptions (R6.1-R6.3, R6.5).

Stock, limits and "redeemed once" are enforced by the database itself: CHECKs keep stock within
[0, total], a counter row per (offer, citizen) caps claims, a partial unique index lets at most one
live (not undone) redemption exist per coupon.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column

# What a claim gives. "coupon" and "voucher" (兑换券) issue a coupon redeemed at a merchant's store;
# "honour" (荣誉兑换) spends the points at once and grants a badge (rewards/honours): the platform
# publishes it, so it has no merchant, no coupon and no use window, and never reaches a settlement.
OFFER_KINDS = ("coupon", "voucher", "honour")
OFFER_STATUSES = ("draft", "live", "paused")
CATEGORIES = ("衣", "食", "住", "行", "用")
COUPON_STATUSES = ("issued", "redeemed", "cancelled", "expired")


class Offer(db.Model):
    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint("kind IN ('coupon', 'voucher', 'honour')", name="kind_known"),
        # An honour offer names a badge and no merchant; a coupon or voucher a merchant and no badge.
        CheckConstraint("(kind = 'honour') = (merchant_id IS NULL)", name="merchant_unless_honour"),
        CheckConstraint("(kind = 'honour') = (badge_code IS NOT NULL)", name="badge_only_honour"),
        CheckConstraint("status IN ('draft', 'live', 'paused')", name="status_known"),
        CheckConstraint("category IN ('衣', '食', '住', '行', '用')", name="category_known"),
        CheckConstraint("points_price > 0", name="price_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= total_stock", name="stock_in_range"),
        CheckConstraint("per_citizen_limit >= 1", name="limit_positive"),
        CheckConstraint("claim_ends_at > claim_starts_at", name="claim_window_ordered"),
        CheckConstraint(
            "CASE WHEN kind = 'honour' THEN use_starts_at IS NULL AND use_ends_at IS NULL AND valid_days IS NULL "
            "ELSE (use_ends_at IS NULL) <> (valid_days IS NULL) END",
            name="one_validity_rule",
        ),
        CheckConstraint("valid_days IS NULL OR valid_days >= 1", name="valid_days_positive"),
        CheckConstraint(
            "points_budget IS NULL OR (budget_used >= 0 AND budget_used <= points_budget)", name="budget_in_range"
        ),
        Index("ix_offers_listing", text("rural_revitalisation DESC"), text("id DESC"),
              postgresql_where=text("status = 'live'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # None for honour offers: the platform (operators) publishes them, no merchant sells them.
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # The badge an honour offer grants (a `granted`-rule badge of rewards/honours/badges.yaml).
    badge_code: Mapped[str | None] = mapped_column(ForeignKey("honour_badges.code"))
    title_zh: Mapped[str] = mapped_column(String(128), nullable=False)
    title_en: Mapped[str] = mapped_column(String(128), nullable=False)
    terms_zh: Mapped[str] = mapped_column(Text, nullable=False)
    terms_en: Mapped[str] = mapped_column(Text, nullable=False)
    points_price: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_stock: Mapped[int] = mapped_column(Integer, nullable=False)
    remaining: Mapped[int] = mapped_column(Integer, nullable=False)
    per_citizen_limit: Mapped[int] = mapped_column(Integer, nullable=False)
    claim_starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    claim_ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Use window: either fixed (use_starts_at optional, use_ends_at) or valid_days after the claim.
    use_starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    use_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_days: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(4), nullable=False)
    districts: Mapped[list[str]] = mapped_column(ARRAY(String(32)), nullable=False)  # empty: citywide
    points_budget: Mapped[int | None] = mapped_column(BigInteger)  # None: bounded by stock only
    budget_used: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    rural_revitalisation: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="draft")
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)  # actor subject, "staff:3"
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OfferClaimCount(db.Model):
    """How many coupons of an offer a citizen holds against the limit (cancelled ones given back).

    Raised by one conditional upsert (`... WHERE claimed < limit`), so concurrent claims of one
    citizen queue on this row and never pass the limit together.
    """

    __tablename__ = "offer_claim_counts"
    __table_args__ = (CheckConstraint("claimed >= 0", name="claimed_non_negative"),)

    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), primary_key=True, index=True)
    claimed: Mapped[int] = mapped_column(Integer, nullable=False)


class Coupon(db.Model):
    """A claimed offer. While `issued`, exactly one open ledger hold (hold_id) reserves its points."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("status IN ('issued', 'redeemed', 'cancelled', 'expired')", name="status_known"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("expires_at > valid_from", name="validity_ordered"),
        Index("ix_coupons_citizen_id_id", "citizen_id", text("id DESC")),
        Index("ix_coupons_issued_expiry", "expires_at", postgresql_where=text("status = 'issued'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), nullable=False, index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), nullable=False, index=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The open hold (a ledger transfer id; no foreign key, like every reference into the ledger).
    # An undone redemption re-holds the points, so this can change; redemptions keep the old ones.
    hold_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="issued")
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # redeemed/cancelled/expired


class Redemption(db.Model):
    """A coupon redeemed at a store; an undo (merchant admin, within 30 minutes) keeps the row."""

    __tablename__ = "coupon_redemptions"
    __table_args__ = (
        Index("uq_coupon_redemptions_live", "coupon_id", unique=True, postgresql_where=text("undone_at IS NULL")),
        Index("ix_coupon_redemptions_merchant_id_id", "merchant_id", text("id DESC")),
        CheckConstraint("points > 0", name="points_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id"), nullable=False, index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), nullable=False)
    store_id: Mapped[int] = mapped_column(ForeignKey("merchant_stores.id"), nullable=False, index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("merchant_staff.id"), nullable=False)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hold_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    post_transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    redeemed_at: Mapped[datetime] = created_at_column()
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    undone_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("merchant_staff.id"))
    undo_transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class HonourExchange(db.Model):
    """An honour offer claimed (荣誉兑换): the points spent (a posted ledger transfer) and the badge granted.

    No hold and no coupon: nothing is left to redeem. A citizen holds a badge once (citizen_honours'
    primary key), so at most one exchange per (citizen, badge) ever commits.
    """

    __tablename__ = "honour_exchanges"
    __table_args__ = (
        UniqueConstraint("citizen_id", "badge_code", name="uq_honour_exchanges_citizen_id_badge_code"),
        CheckConstraint("points > 0", name="points_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), nullable=False, index=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False)
    badge_code: Mapped[str] = mapped_column(ForeignKey("honour_badges.code"), nullable=False)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    transfer_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, unique=True)  # the ledger's spend
    created_at: Mapped[datetime] = created_at_column()
