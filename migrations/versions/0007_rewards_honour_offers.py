"""rewards (issue 3): honour offers, claim audit

Honour offers (荣誉兑换): offers.kind 'honour' names a badge (offers.badge_code) and no merchant
(offers.merchant_id becomes nullable) and has no use window; a claim of one is an honour_exchanges row.

Pending credits are no longer stored on the credit side of a hold (a merchant's account row was a
lock every claim of that merchant waited on): ledger_accounts.credits_pending is derived from open
holds instead, so the stored column is set to 0 here, the value the ledger now keeps it at.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.alter_column("offers", "merchant_id", existing_type=sa.BigInteger(), nullable=True)
    op.add_column("offers", sa.Column("badge_code", sa.String(length=64), nullable=True))
    op.create_foreign_key(op.f("fk_offers_badge_code_honour_badges"), "offers", "honour_badges",
                          ["badge_code"], ["code"])
    op.drop_constraint(op.f("ck_offers_kind_known"), "offers", type_="check")
    op.create_check_constraint(op.f("ck_offers_kind_known"), "offers", "kind IN ('coupon', 'voucher', 'honour')")
    op.drop_constraint(op.f("ck_offers_one_validity_rule"), "offers", type_="check")
    op.create_check_constraint(
        op.f("ck_offers_one_validity_rule"), "offers",
        "CASE WHEN kind = 'honour' THEN use_starts_at IS NULL AND use_ends_at IS NULL AND valid_days IS NULL "
        "ELSE (use_ends_at IS NULL) <> (valid_days IS NULL) END",
    )
    op.create_check_constraint(op.f("ck_offers_merchant_unless_honour"), "offers",
                               "(kind = 'honour') = (merchant_id IS NULL)")
    op.create_check_constraint(op.f("ck_offers_badge_only_honour"), "offers",
                               "(kind = 'honour') = (badge_code IS NOT NULL)")
    op.create_table(
        "honour_exchanges",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("offer_id", sa.BigInteger(), nullable=False),
        sa.Column("citizen_id", sa.BigInteger(), nullable=False),
        sa.Column("badge_code", sa.String(length=64), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("points > 0", name=op.f("ck_honour_exchanges_points_positive")),
        sa.ForeignKeyConstraint(["badge_code"], ["honour_badges.code"],
                                name=op.f("fk_honour_exchanges_badge_code_honour_badges")),
        sa.ForeignKeyConstraint(["citizen_id"], ["citizens.id"], name=op.f("fk_honour_exchanges_citizen_id_citizens")),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_honour_exchanges_offer_id_offers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_honour_exchanges")),
        sa.UniqueConstraint("citizen_id", "badge_code", name="uq_honour_exchanges_citizen_id_badge_code"),
        sa.UniqueConstraint("transfer_id", name=op.f("uq_honour_exchanges_transfer_id")),
    )
    op.create_index(op.f("ix_honour_exchanges_offer_id"), "honour_exchanges", ["offer_id"], unique=False)
    op.execute("UPDATE ledger_accounts SET credits_pending = 0 WHERE credits_pending <> 0")


def downgrade():
    # Pending credits back on the credit side: the sum of each account's open holds.
    op.execute(
        """
        UPDATE ledger_accounts a SET credits_pending = s.amount
        FROM (SELECT h.credit_account_id AS id, sum(h.amount) AS amount
              FROM ledger_transfers h
              WHERE h.pending AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = h.id)
              GROUP BY h.credit_account_id) s
        WHERE a.id = s.id
        """
    )
    op.drop_index(op.f("ix_honour_exchanges_offer_id"), table_name="honour_exchanges")
    op.drop_table("honour_exchanges")
    op.execute("DELETE FROM offer_claim_counts WHERE offer_id IN (SELECT id FROM offers WHERE kind = 'honour')")
    op.execute("DELETE FROM offers WHERE kind = 'honour'")
    op.drop_constraint(op.f("ck_offers_badge_only_honour"), "offers", type_="check")
    op.drop_constraint(op.f("ck_offers_merchant_unless_honour"), "offers", type_="check")
    op.drop_constraint(op.f("ck_offers_one_validity_rule"), "offers", type_="check")
    op.create_check_constraint(op.f("ck_offers_one_validity_rule"), "offers",
                               "(use_ends_at IS NULL) <> (valid_days IS NULL)")
    op.drop_constraint(op.f("ck_offers_kind_known"), "offers", type_="check")
    op.create_check_constraint(op.f("ck_offers_kind_known"), "offers", "kind IN ('coupon', 'voucher')")
    op.drop_constraint(op.f("fk_offers_badge_code_honour_badges"), "offers", type_="foreignkey")
    op.drop_column("offers", "badge_code")
    op.alter_column("offers", "merchant_id", existing_type=sa.BigInteger(), nullable=False)
