"""Event order on ledger rows, every removed key of a missing-file report, and prefixes that cannot be listed.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from annotation_reconciler.ledger import LEDGER_SCHEMA

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The (eventTime, sequencer) of the event that opened or last closed the row; for a row a listing
    # opened, the time that listing started (no sequencer). An older event changes nothing.
    op.add_column("annotation_quarantine", sa.Column("event_time", sa.DateTime(timezone=True)), schema=LEDGER_SCHEMA)
    op.add_column("annotation_quarantine", sa.Column("event_sequencer", sa.String), schema=LEDGER_SCHEMA)
    # A report closes only when every removed key it names is back.
    op.add_column(
        "missing_annotation_file",
        sa.Column("removed_keys", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        schema=LEDGER_SCHEMA,
    )
    op.execute("UPDATE annotation_reconciler.missing_annotation_file SET removed_keys = ARRAY[removed_key]")
    op.create_table(
        "blind_prefix",
        sa.Column("prefix", sa.String, primary_key=True),
        sa.Column("dataset_id", sa.Integer),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String, nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        schema=LEDGER_SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("blind_prefix", schema=LEDGER_SCHEMA)
    op.drop_column("missing_annotation_file", "removed_keys", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "event_sequencer", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "event_time", schema=LEDGER_SCHEMA)
