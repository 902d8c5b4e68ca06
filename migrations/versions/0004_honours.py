"""badges, honours, levels and leaderboard opt-in

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "honour_badges",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("rule_type", sa.String(length=32), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("name_zh", sa.String(length=64), nullable=False),
        sa.Column("name_en", sa.String(length=64), nullable=False),
        sa.Column("description_zh", sa.String(length=255), nullable=False),
        sa.Column("description_en", sa.String(length=255), nullable=False),
        sa.Column("icon", sa.String(length=64), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_honour_badges")),
    )
    op.create_table(
        "honour_levels",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("threshold_grams", sa.BigInteger(), nullable=False),
        sa.Column("name_zh", sa.String(length=32), nullable=False),
        sa.Column("name_en", sa.String(length=32), nullable=False),
        sa.Column("icon", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_honour_levels")),
        sa.UniqueConstraint("threshold_grams", name=op.f("uq_honour_levels_threshold_grams")),
    )
    op.create_table(
        "citizen_honours",
        sa.Column("citizen_id", sa.BigInteger(), nullable=False),
        sa.Column("badge_code", sa.String(length=64), nullable=False),
        sa.Column("awarded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["badge_code"], ["honour_badges.code"], name=op.f("fk_citizen_honours_badge_code_honour_badges")
        ),
        sa.ForeignKeyConstraint(["citizen_id"], ["citizens.id"], name=op.f("fk_citizen_honours_citizen_id_citizens")),
        sa.PrimaryKeyConstraint("citizen_id", "badge_code", name=op.f("pk_citizen_honours")),
    )
    op.create_index("ix_citizen_honours_badge", "citizen_honours", ["badge_code"], unique=False)
    op.create_table(
        "honour_profiles",
        sa.Column("citizen_id", sa.BigInteger(), nullable=False),
        sa.Column("nickname", sa.String(length=20), nullable=True),
        sa.Column("leaderboard_opt_in", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["citizen_id"], ["citizens.id"], name=op.f("fk_honour_profiles_citizen_id_citizens")),
        sa.PrimaryKeyConstraint("citizen_id", name=op.f("pk_honour_profiles")),
    )
    op.create_index(
        "ix_honour_profiles_opted_in",
        "honour_profiles",
        ["citizen_id"],
        unique=False,
        postgresql_where=sa.text("leaderboard_opt_in"),
    )


def downgrade():
    op.drop_index("ix_honour_profiles_opted_in", table_name="honour_profiles", postgresql_where=sa.text("leaderboard_opt_in"))
    op.drop_table("honour_profiles")
    op.drop_index("ix_citizen_honours_badge", table_name="citizen_honours")
    op.drop_table("citizen_honours")
    op.drop_table("honour_levels")
    op.drop_table("honour_badges")
