"""point lots, expiry, debt and notifications

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('ledger_lots',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('citizen_id', sa.BigInteger(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('credited', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('held', sa.BigInteger(), nullable=False),
    sa.Column('expired', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('credited >= 0 AND remaining >= 0 AND held >= 0 AND expired >= 0', name=op.f('ck_ledger_lots_amounts_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_lots')),
    sa.UniqueConstraint('citizen_id', 'expires_on', name='uq_ledger_lots_citizen_id_expires_on')
    )
    op.create_index('ix_ledger_lots_expires_on', 'ledger_lots', ['expires_on'], unique=False)
    # Lots are updated on every earnings batch: room on each page keeps those updates HOT.
    op.execute("ALTER TABLE ledger_lots SET (fillfactor = 80)")
    op.create_table('ledger_hold_allocations',
    sa.Column('hold_id', sa.Uuid(), nullable=False),
    sa.Column('lot_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_hold_allocations_amount_positive')),
    sa.ForeignKeyConstraint(['hold_id'], ['ledger_transfers.id'], name=op.f('fk_ledger_hold_allocations_hold_id_ledger_transfers')),
    sa.ForeignKeyConstraint(['lot_id'], ['ledger_lots.id'], name=op.f('fk_ledger_hold_allocations_lot_id_ledger_lots')),
    sa.PrimaryKeyConstraint('hold_id', 'lot_id', name=op.f('pk_ledger_hold_allocations'))
    )
    op.create_table('ledger_reversals',
    sa.Column('transfer_id', sa.Uuid(), nullable=False),
    sa.Column('citizen_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('recovered', sa.BigInteger(), nullable=False),
    sa.Column('debt', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('recovered >= 0 AND debt >= 0 AND recovered + debt = amount', name=op.f('ck_ledger_reversals_amounts_add_up')),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizens.id'], name=op.f('fk_ledger_reversals_citizen_id_citizens')),
    sa.ForeignKeyConstraint(['transfer_id'], ['ledger_transfers.id'], name=op.f('fk_ledger_reversals_transfer_id_ledger_transfers')),
    sa.PrimaryKeyConstraint('transfer_id', name=op.f('pk_ledger_reversals'))
    )
    op.create_index('ix_ledger_accounts_clawback_code', 'ledger_accounts', ['code'], unique=False,
                    postgresql_where=sa.text("kind = 'clawback'"))
    op.create_table('notifications',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('citizen_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizens.id'], name=op.f('fk_notifications_citizen_id_citizens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_notifications_dedupe_key'))
    )
    op.create_index('ix_notifications_citizen_id_desc', 'notifications', ['citizen_id', sa.literal_column('id DESC')],
                    unique=False)
    # Points held before lots existed: one lot per citizen for their whole balance, expiring at the
    # end of next year (Asia/Shanghai), and each open hold allocated to it. Empty on a new database.
    op.execute(
        """
        INSERT INTO ledger_lots (citizen_id, expires_on, credited, remaining, held, expired)
        SELECT citizen_id,
               make_date(extract(year FROM now() AT TIME ZONE 'Asia/Shanghai')::int + 1, 12, 31),
               credits_posted - debits_posted, credits_posted - debits_posted - debits_pending, debits_pending, 0
        FROM ledger_accounts
        WHERE kind = 'citizen' AND credits_posted - debits_posted > 0
        """
    )
    op.execute(
        """
        INSERT INTO ledger_hold_allocations (hold_id, lot_id, amount)
        SELECT h.id, l.id, h.amount
        FROM ledger_transfers h
        JOIN ledger_accounts a ON a.id = h.debit_account_id AND a.kind = 'citizen'
        JOIN ledger_lots l ON l.citizen_id = a.citizen_id
        WHERE h.pending AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = h.id)
        """
    )


def downgrade():
    op.drop_index('ix_notifications_citizen_id_desc', table_name='notifications')
    op.drop_table('notifications')
    op.drop_index('ix_ledger_accounts_clawback_code', table_name='ledger_accounts',
                  postgresql_where=sa.text("kind = 'clawback'"))
    op.drop_table('ledger_reversals')
    op.drop_table('ledger_hold_allocations')
    op.drop_index('ix_ledger_lots_expires_on', table_name='ledger_lots')
    op.drop_table('ledger_lots')
