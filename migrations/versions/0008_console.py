"""operators console (issue 5): the methodology registry

Methodology versions get their author, co-benefit factors, attached documents' references and
filing time; a filing number is unique, and one version per code at most is being worked on
(draft, submitted, returned or approved). Every decision on a version is a methodology_decisions
row; filing numbers (SHCI-M-<year>-<n>) come from a per-year counter bumped atomically.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OPEN = sa.text("status IN ('draft', 'submitted', 'returned', 'approved')")


def upgrade():
    op.add_column("methodologies", sa.Column("author_id", sa.BigInteger(), nullable=True))
    op.add_column("methodologies", sa.Column("co_benefits", postgresql.JSONB(astext_type=sa.Text()),
                                             server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column("methodologies", sa.Column("documents", postgresql.JSONB(astext_type=sa.Text()),
                                             server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.add_column("methodologies", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("methodologies", sa.Column("filed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key(op.f("fk_methodologies_author_id_staff_users"), "methodologies", "staff_users",
                          ["author_id"], ["id"])
    op.create_unique_constraint("uq_methodologies_filing_number", "methodologies", ["filing_number"])
    op.create_index("uq_methodologies_open_code", "methodologies", ["code"], unique=True, postgresql_where=_OPEN)
    op.create_table(
        "methodology_decisions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("methodology_id", sa.BigInteger(), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["staff_users.id"],
                                name=op.f("fk_methodology_decisions_actor_id_staff_users")),
        sa.ForeignKeyConstraint(["methodology_id"], ["methodologies.id"],
                                name=op.f("fk_methodology_decisions_methodology_id_methodologies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_methodology_decisions")),
    )
    op.create_index(op.f("ix_methodology_decisions_methodology_id"), "methodology_decisions",
                    ["methodology_id"], unique=False)
    op.create_table(
        "methodology_filing_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_methodology_filing_counters")),
    )


def downgrade():
    op.drop_table("methodology_filing_counters")
    op.drop_index(op.f("ix_methodology_decisions_methodology_id"), table_name="methodology_decisions")
    op.drop_table("methodology_decisions")
    op.drop_index("uq_methodologies_open_code", table_name="methodologies", postgresql_where=_OPEN)
    op.drop_constraint("uq_methodologies_filing_number", "methodologies", type_="unique")
    op.drop_constraint(op.f("fk_methodologies_author_id_staff_users"), "methodologies", type_="foreignkey")
    for column in ("filed_at", "updated_at", "documents", "co_benefits", "author_id"):
        op.drop_column("methodologies", column)
