"""A citizen's appeal for a credit they expected and did not get."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, LargeBinary, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models_base import created_at_column

# pending -> approved | rejected (a reviewer), or pending -> withdrawn (the account was deleted).
APPEAL_STATUSES = ("pending", "approved", "rejected", "withdrawn")


class Appeal(db.Model):
    __tablename__ = "appeals"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected', 'withdrawn')", name="status_known"),
        CheckConstraint("points IS NULL OR points > 0", name="points_positive"),
        # The citizen's list (newest first) and the reviewers' queue (by status, oldest first).
        Index("ix_appeals_citizen_id_desc", "citizen_id", text("id DESC")),
        Index("ix_appeals_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("citizens.id"), nullable=False)
    scenario_code: Mapped[str] = mapped_column(String(64), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # What the citizen wrote (partner reference, description, e-invoice number) as one AES-GCM
    # sealed JSON document bound to the row id: free text may hold anything personal. Erased (NULL)
    # when the account is deleted.
    details_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    reason: Mapped[str | None] = mapped_column(String(500))  # the reviewer's, shown to the citizen
    points: Mapped[int | None] = mapped_column(BigInteger)  # credited on approval
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the ledger credit on approval
    decided_by: Mapped[str | None] = mapped_column(String(64))  # "staff:3"
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
