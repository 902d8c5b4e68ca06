"""Account deletion requests: the confirmation step and, once done, the receipt."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class AccountDeletion(db.Model):
    """One row per citizen who asked to delete their account.

    Asking again replaces the confirmation (only its hash is kept); confirming in time deletes the
    account and fills in the receipt, which a retry of the confirmation gets back unchanged.
    """

    __tablename__ = "account_deletions"

    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    forfeited_points: Mapped[int | None] = mapped_column(BigInteger)
    coupons_cancelled: Mapped[int | None] = mapped_column(Integer)
    bindings_removed: Mapped[int | None] = mapped_column(Integer)
