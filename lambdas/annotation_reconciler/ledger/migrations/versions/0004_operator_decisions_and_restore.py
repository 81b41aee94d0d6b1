"""Operator decisions that stick, who decided, and restored purges.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from annotation_reconciler.ledger import LEDGER_SCHEMA

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An operator's release exempts the annotation from a new quarantine while its stored path is the
    # released one and its metadata has not been seen again (then the exemption lapses by itself).
    op.add_column(
        "annotation_quarantine",
        sa.Column("exempt", sa.Boolean, nullable=False, server_default=sa.false()),
        schema=LEDGER_SCHEMA,
    )
    # Who closed the row by hand: the operator of a release or of a restore.
    op.add_column("annotation_quarantine", sa.Column("resolved_by", sa.String), schema=LEDGER_SCHEMA)
    # A purged annotation put back from its snapshot (`annotation-reconciler restore`).
    op.add_column("annotation_quarantine", sa.Column("restored_at", sa.DateTime(timezone=True)), schema=LEDGER_SCHEMA)
    op.create_index(
        "ix_annotation_quarantine_exempt",
        "annotation_quarantine",
        ["annotation_id"],
        postgresql_where=sa.text("exempt"),
        schema=LEDGER_SCHEMA,
    )
    op.drop_constraint("ck_annotation_quarantine_status", "annotation_quarantine", schema=LEDGER_SCHEMA)
    op.create_check_constraint(
        "ck_annotation_quarantine_status",
        "annotation_quarantine",
        "status IN ('quarantined', 'released', 'purged', 'held', 'restored')",
        schema=LEDGER_SCHEMA,
    )


def downgrade() -> None:
    op.execute(
        sa.text(f"UPDATE {LEDGER_SCHEMA}.annotation_quarantine SET status = 'purged' WHERE status = 'restored'")  # noqa: S608
    )
    op.drop_constraint("ck_annotation_quarantine_status", "annotation_quarantine", schema=LEDGER_SCHEMA)
    op.create_check_constraint(
        "ck_annotation_quarantine_status",
        "annotation_quarantine",
        "status IN ('quarantined', 'released', 'purged', 'held')",
        schema=LEDGER_SCHEMA,
    )
    op.drop_index("ix_annotation_quarantine_exempt", "annotation_quarantine", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "restored_at", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "resolved_by", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "exempt", schema=LEDGER_SCHEMA)
