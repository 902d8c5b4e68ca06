"""staff accounts, merchants, stores and merchant staff

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('staff_users',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=128), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('operator', 'reviewer', 'admin')", name=op.f('ck_staff_users_role_known')),
    sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f('ck_staff_users_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_users')),
    sa.UniqueConstraint('login', name=op.f('uq_staff_users_login'))
    )
    op.create_table('merchants',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('name_zh', sa.String(length=128), nullable=False),
    sa.Column('name_en', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by_staff_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f('ck_merchants_status_known')),
    sa.ForeignKeyConstraint(['created_by_staff_id'], ['staff_users.id'],
                            name=op.f('fk_merchants_created_by_staff_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants'))
    )
    op.create_table('merchant_stores',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('active', 'closed')", name=op.f('ck_merchant_stores_status_known')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_stores_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_stores'))
    )
    op.create_index(op.f('ix_merchant_stores_merchant_id'), 'merchant_stores', ['merchant_id'], unique=False)
    op.create_table('merchant_staff',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('citizen_id', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('merchant_staff', 'merchant_admin')", name=op.f('ck_merchant_staff_role_known')),
    sa.CheckConstraint("status IN ('active', 'removed')", name=op.f('ck_merchant_staff_status_known')),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizens.id'], name=op.f('fk_merchant_staff_citizen_id_citizens')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_staff_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_staff'))
    )
    op.create_index(op.f('ix_merchant_staff_merchant_id'), 'merchant_staff', ['merchant_id'], unique=False)
    op.create_index(op.f('ix_merchant_staff_citizen_id'), 'merchant_staff', ['citizen_id'], unique=False)
    op.create_index('uq_merchant_staff_active_citizen', 'merchant_staff', ['citizen_id'], unique=True,
                    postgresql_where=sa.text("status = 'active'"))
    op.create_table('merchant_staff_stores',
    sa.Column('staff_id', sa.BigInteger(), nullable=False),
    sa.Column('store_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['merchant_staff.id'],
                            name=op.f('fk_merchant_staff_stores_staff_id_merchant_staff')),
    sa.ForeignKeyConstraint(['store_id'], ['merchant_stores.id'],
                            name=op.f('fk_merchant_staff_stores_store_id_merchant_stores')),
    sa.PrimaryKeyConstraint('staff_id', 'store_id', name=op.f('pk_merchant_staff_stores'))
    )
    op.create_index(op.f('ix_merchant_staff_stores_store_id'), 'merchant_staff_stores', ['store_id'], unique=False)
    op.create_table('merchant_staff_invitations',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('store_ids', postgresql.ARRAY(sa.BigInteger()), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=True),
    sa.Column('code_hash', sa.LargeBinary(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by_staff_id', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("role IN ('merchant_staff', 'merchant_admin')",
                       name=op.f('ck_merchant_staff_invitations_role_known')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'],
                            name=op.f('fk_merchant_staff_invitations_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['used_by_staff_id'], ['merchant_staff.id'],
                            name=op.f('fk_merchant_staff_invitations_used_by_staff_id_merchant_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_staff_invitations')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_merchant_staff_invitations_code_hash'))
    )
    op.create_index(op.f('ix_merchant_staff_invitations_merchant_id'), 'merchant_staff_invitations',
                    ['merchant_id'], unique=False)


def downgrade():
    op.drop_table('merchant_staff_invitations')
    op.drop_table('merchant_staff_stores')
    op.drop_table('merchant_staff')
    op.drop_table('merchant_stores')
    op.drop_table('merchants')
    op.drop_table('staff_users')
