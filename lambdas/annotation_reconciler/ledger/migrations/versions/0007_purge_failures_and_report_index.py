"""Purge failures and undecided re-checks kept on their ledger rows; an index for the missing-file lookup.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from annotation_reconciler.ledger import LEDGER_SCHEMA

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A due row whose deletion failed on its own (a foreign key from a table the reconciler does not know, a
    # trigger, a missing grant): the error, when, and how many purges in a row failed on it. It waits, with
    # its error, in `status`; the purge goes on with the other rows.
    op.add_column("annotation_quarantine", sa.Column("purge_error", sa.String), schema=LEDGER_SCHEMA)
    op.add_column(
        "annotation_quarantine", sa.Column("purge_failed_at", sa.DateTime(timezone=True)), schema=LEDGER_SCHEMA
    )
    op.add_column(
        "annotation_quarantine",
        sa.Column("purge_failures", sa.Integer, nullable=False, server_default="0"),
        schema=LEDGER_SCHEMA,
    )
    # Why the last purge could not decide a due row (S3 could not say, a twin spelling, the page limit): the
    # row waits, and `status` says why.
    op.add_column("annotation_quarantine", sa.Column("unknown_reason", sa.String), schema=LEDGER_SCHEMA)
    # The end of the interval the row's event time means ([event_time, event_until)): an EventBridge time has
    # whole seconds, an S3 notification's milliseconds; NULL: an instant (a listing's start).
    op.add_column("annotation_quarantine", sa.Column("event_until", sa.DateTime(timezone=True)), schema=LEDGER_SCHEMA)
    # `removed_keys && :keys` on the open reports (every events batch): a GIN index instead of a scan.
    op.create_index(
        "ix_missing_annotation_file_open_keys",
        "missing_annotation_file",
        ["removed_keys"],
        schema=LEDGER_SCHEMA,
        postgresql_using="gin",
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    # The retention's prune reads closed rows by when they closed.
    op.create_index(
        "ix_annotation_quarantine_resolved_at", "annotation_quarantine", ["resolved_at"], schema=LEDGER_SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_annotation_quarantine_resolved_at", "annotation_quarantine", schema=LEDGER_SCHEMA)
    op.drop_index("ix_missing_annotation_file_open_keys", "missing_annotation_file", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "event_until", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "unknown_reason", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "purge_failures", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "purge_failed_at", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "purge_error", schema=LEDGER_SCHEMA)
