"""campaigns

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('campaigns',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('title', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('scenario_codes', postgresql.ARRAY(sa.String(length=64)), nullable=True),
    sa.Column('districts', postgresql.ARRAY(sa.String(length=32)), nullable=True),
    sa.Column('multiplier', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('bonus_points', sa.Integer(), nullable=False),
    sa.Column('budget_points', sa.BigInteger(), nullable=False),
    sa.Column('used_points', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_campaigns_window_ordered')),
    sa.CheckConstraint('multiplier >= 1 AND multiplier <= 10', name=op.f('ck_campaigns_multiplier_range')),
    sa.CheckConstraint('bonus_points >= 0', name=op.f('ck_campaigns_bonus_non_negative')),
    sa.CheckConstraint('multiplier > 1 OR bonus_points > 0', name=op.f('ck_campaigns_gives_something')),
    sa.CheckConstraint('used_points >= 0 AND used_points <= budget_points', name=op.f('ck_campaigns_within_budget')),
    sa.CheckConstraint("status IN ('draft', 'live', 'paused', 'ended')", name=op.f('ck_campaigns_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('code', name=op.f('uq_campaigns_code'))
    )
    op.create_index('ix_campaigns_window', 'campaigns', ['ends_at', 'starts_at'], unique=False,
                    postgresql_where=sa.text("status <> 'draft'"))
    op.create_table('campaign_awards',
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('campaign_id', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('awarded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('points > 0', name=op.f('ck_campaign_awards_points_positive')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_awards_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_campaign_awards'))
    )
    op.create_index(op.f('ix_campaign_awards_campaign_id'), 'campaign_awards', ['campaign_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_campaign_awards_campaign_id'), table_name='campaign_awards')
    op.drop_table('campaign_awards')
    op.drop_index('ix_campaigns_window', table_name='campaigns', postgresql_where=sa.text("status <> 'draft'"))
    op.drop_table('campaigns')
