"""offers, coupons and redemptions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('offers',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title_zh', sa.String(length=128), nullable=False),
    sa.Column('title_en', sa.String(length=128), nullable=False),
    sa.Column('terms_zh', sa.Text(), nullable=False),
    sa.Column('terms_en', sa.Text(), nullable=False),
    sa.Column('points_price', sa.BigInteger(), nullable=False),
    sa.Column('total_stock', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('per_citizen_limit', sa.Integer(), nullable=False),
    sa.Column('claim_starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claim_ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('use_starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('use_ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('valid_days', sa.Integer(), nullable=True),
    sa.Column('category', sa.String(length=4), nullable=False),
    sa.Column('districts', postgresql.ARRAY(sa.String(length=32)), nullable=False),
    sa.Column('points_budget', sa.BigInteger(), nullable=True),
    sa.Column('budget_used', sa.BigInteger(), nullable=False),
    sa.Column('rural_revitalisation', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("category IN ('衣', '食', '住', '行', '用')", name=op.f('ck_offers_category_known')),
    sa.CheckConstraint("kind IN ('coupon', 'voucher')", name=op.f('ck_offers_kind_known')),
    sa.CheckConstraint("status IN ('draft', 'live', 'paused')", name=op.f('ck_offers_status_known')),
    sa.CheckConstraint('(use_ends_at IS NULL) <> (valid_days IS NULL)', name=op.f('ck_offers_one_validity_rule')),
    sa.CheckConstraint('claim_ends_at > claim_starts_at', name=op.f('ck_offers_claim_window_ordered')),
    sa.CheckConstraint('per_citizen_limit >= 1', name=op.f('ck_offers_limit_positive')),
    sa.CheckConstraint('points_budget IS NULL OR (budget_used >= 0 AND budget_used <= points_budget)',
                            name=op.f('ck_offers_budget_in_range')),
    sa.CheckConstraint('points_price > 0', name=op.f('ck_offers_price_positive')),
    sa.CheckConstraint('remaining >= 0 AND remaining <= total_stock', name=op.f('ck_offers_stock_in_range')),
    sa.CheckConstraint('valid_days IS NULL OR valid_days >= 1', name=op.f('ck_offers_valid_days_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_offers_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offers'))
    )
    op.create_index('ix_offers_listing', 'offers', [sa.literal_column('rural_revitalisation DESC'),
                            sa.literal_column('id DESC')], unique=False, postgresql_where=sa.text("status = 'live'"))
    op.create_index(op.f('ix_offers_merchant_id'), 'offers', ['merchant_id'], unique=False)
    op.create_table('coupons',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('offer_id', sa.BigInteger(), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('citizen_id', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('hold_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('issued', 'redeemed', 'cancelled', 'expired')",
                            name=op.f('ck_coupons_status_known')),
    sa.CheckConstraint('expires_at > valid_from', name=op.f('ck_coupons_validity_ordered')),
    sa.CheckConstraint('points > 0', name=op.f('ck_coupons_points_positive')),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizens.id'], name=op.f('fk_coupons_citizen_id_citizens')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_coupons_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_coupons_offer_id_offers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('hold_id', name=op.f('uq_coupons_hold_id'))
    )
    op.create_index('ix_coupons_citizen_id_id', 'coupons', ['citizen_id', sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_coupons_issued_expiry', 'coupons', ['expires_at'], unique=False,
                            postgresql_where=sa.text("status = 'issued'"))
    op.create_index(op.f('ix_coupons_merchant_id'), 'coupons', ['merchant_id'], unique=False)
    op.create_index(op.f('ix_coupons_offer_id'), 'coupons', ['offer_id'], unique=False)
    op.create_table('offer_claim_counts',
    sa.Column('offer_id', sa.BigInteger(), nullable=False),
    sa.Column('citizen_id', sa.BigInteger(), nullable=False),
    sa.Column('claimed', sa.Integer(), nullable=False),
    sa.CheckConstraint('claimed >= 0', name=op.f('ck_offer_claim_counts_claimed_non_negative')),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizens.id'], name=op.f('fk_offer_claim_counts_citizen_id_citizens')),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_offer_claim_counts_offer_id_offers')),
    sa.PrimaryKeyConstraint('offer_id', 'citizen_id', name=op.f('pk_offer_claim_counts'))
    )
    op.create_index(op.f('ix_offer_claim_counts_citizen_id'), 'offer_claim_counts', ['citizen_id'], unique=False)
    op.create_table('coupon_redemptions',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('coupon_id', sa.BigInteger(), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('store_id', sa.BigInteger(), nullable=False),
    sa.Column('staff_id', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('hold_id', sa.Uuid(), nullable=False),
    sa.Column('post_transfer_id', sa.Uuid(), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('undone_by_staff_id', sa.BigInteger(), nullable=True),
    sa.Column('undo_transfer_id', sa.Uuid(), nullable=True),
    sa.CheckConstraint('points > 0', name=op.f('ck_coupon_redemptions_points_positive')),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_coupon_redemptions_coupon_id_coupons')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'],
                            name=op.f('fk_coupon_redemptions_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['staff_id'], ['merchant_staff.id'],
                            name=op.f('fk_coupon_redemptions_staff_id_merchant_staff')),
    sa.ForeignKeyConstraint(['store_id'], ['merchant_stores.id'],
                            name=op.f('fk_coupon_redemptions_store_id_merchant_stores')),
    sa.ForeignKeyConstraint(['undone_by_staff_id'], ['merchant_staff.id'],
                            name=op.f('fk_coupon_redemptions_undone_by_staff_id_merchant_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupon_redemptions'))
    )
    op.create_index(op.f('ix_coupon_redemptions_coupon_id'), 'coupon_redemptions', ['coupon_id'], unique=False)
    op.create_index('ix_coupon_redemptions_merchant_id_id', 'coupon_redemptions', ['merchant_id',
                            sa.literal_column('id DESC')], unique=False)
    op.create_index(op.f('ix_coupon_redemptions_store_id'), 'coupon_redemptions', ['store_id'], unique=False)
    op.create_index('uq_coupon_redemptions_live', 'coupon_redemptions', ['coupon_id'], unique=True,
                            postgresql_where=sa.text('undone_at IS NULL'))


def downgrade():
    op.drop_index('uq_coupon_redemptions_live', table_name='coupon_redemptions',
                            postgresql_where=sa.text('undone_at IS NULL'))
    op.drop_index(op.f('ix_coupon_redemptions_store_id'), table_name='coupon_redemptions')
    op.drop_index('ix_coupon_redemptions_merchant_id_id', table_name='coupon_redemptions')
    op.drop_index(op.f('ix_coupon_redemptions_coupon_id'), table_name='coupon_redemptions')
    op.drop_table('coupon_redemptions')
    op.drop_index(op.f('ix_offer_claim_counts_citizen_id'), table_name='offer_claim_counts')
    op.drop_table('offer_claim_counts')
    op.drop_index(op.f('ix_coupons_offer_id'), table_name='coupons')
    op.drop_index(op.f('ix_coupons_merchant_id'), table_name='coupons')
    op.drop_index('ix_coupons_issued_expiry', table_name='coupons', postgresql_where=sa.text("status = 'issued'"))
    op.drop_index('ix_coupons_citizen_id_id', table_name='coupons')
    op.drop_table('coupons')
    op.drop_index(op.f('ix_offers_merchant_id'), table_name='offers')
    op.drop_index('ix_offers_listing', table_name='offers', postgresql_where=sa.text("status = 'live'"))
    op.drop_table('offers')
