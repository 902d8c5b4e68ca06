"""ingest speed (issue 2): room on the page for the crediting path's updates (HOT updates)

Crediting rewrites each inbound event once and each touched citizen's ledger account once per
batch. An update whose new row version fits on the same page and changes no indexed column is a
HOT update: no index entry is written. Measured with bench/ingest.py (pg_stat_user_tables):

- ledger_accounts was created full (fillfactor 100): only 43-66% of the balance updates were HOT,
  every other one wrote three index entries (id, code, citizen_id). Half of each page is now left
  free for them.
- inbound_events had half of each page free (fillfactor 50), but an event grows by ~25% when its
  outcome is written (grams, points, transfer id, processed_at), so ~12% of the rewrites no longer
  fit and wrote four index entries each. 40 leaves room for the larger versions.

Only pages written from now on are affected (existing rows keep their pages).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27

"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("ALTER TABLE ledger_accounts SET (fillfactor = 50)")
    op.execute("ALTER TABLE inbound_events SET (fillfactor = 40)")


def downgrade():
    op.execute("ALTER TABLE inbound_events SET (fillfactor = 50)")
    op.execute("ALTER TABLE ledger_accounts RESET (fillfactor)")
