"""citizen self-service for the mini-app (issue 4): appeals, account deletion requests

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('appeals',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('citizen_id', sa.BigInteger(), nullable=False),
    sa.Column('scenario_code', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details_enc', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('points', sa.BigInteger(), nullable=True),
    sa.Column('transfer_id', sa.Uuid(), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'withdrawn')",
                       name=op.f('ck_appeals_status_known')),
    sa.CheckConstraint('points IS NULL OR points > 0', name=op.f('ck_appeals_points_positive')),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizens.id'], name=op.f('fk_appeals_citizen_id_citizens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appeals'))
    )
    op.create_index('ix_appeals_citizen_id_desc', 'appeals', ['citizen_id', sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_appeals_status_id', 'appeals', ['status', 'id'], unique=False)
    op.create_table('account_deletions',
    sa.Column('citizen_id', sa.BigInteger(), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('forfeited_points', sa.BigInteger(), nullable=True),
    sa.Column('coupons_cancelled', sa.Integer(), nullable=True),
    sa.Column('bindings_removed', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizens.id'], name=op.f('fk_account_deletions_citizen_id_citizens')),
    sa.PrimaryKeyConstraint('citizen_id', name=op.f('pk_account_deletions'))
    )


def downgrade():
    op.drop_table('account_deletions')
    op.drop_index('ix_appeals_status_id', table_name='appeals')
    op.drop_index('ix_appeals_citizen_id_desc', table_name='appeals')
    op.drop_table('appeals')
