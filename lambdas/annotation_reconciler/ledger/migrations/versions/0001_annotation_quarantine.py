"""The quarantine ledger and the missing-file report, in the ledger schema (never in ``public``).

Edited in place to name the schema: nothing had been deployed yet, so no database holds the
earlier revision 0001 that created these tables in ``public``.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from annotation_reconciler.ledger import LEDGER_SCHEMA

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annotation_quarantine",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("annotation_id", sa.Integer, nullable=False),
        sa.Column("dataset_id", sa.Integer),
        sa.Column("run_id", sa.Integer),
        sa.Column("s3_metadata_path", sa.String, nullable=False),
        sa.Column("metadata_key", sa.String),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purge_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolution", sa.String),
        sa.Column("approved_at", sa.DateTime(timezone=True)),
        sa.Column("approved_by", sa.String),
        sa.Column("snapshot", JSONB),
        sa.CheckConstraint(
            "status IN ('quarantined', 'released', 'purged', 'held')", name="ck_annotation_quarantine_status"
        ),
        sa.CheckConstraint("source IN ('event', 'scan', 'importer', 'cli')", name="ck_annotation_quarantine_source"),
        sa.CheckConstraint("status <> 'purged' OR snapshot IS NOT NULL", name="ck_annotation_quarantine_snapshot"),
        schema=LEDGER_SCHEMA,
    )
    op.create_index(
        "ix_annotation_quarantine_annotation_id", "annotation_quarantine", ["annotation_id"], schema=LEDGER_SCHEMA
    )
    op.create_index(
        "uq_annotation_quarantine_open",
        "annotation_quarantine",
        ["annotation_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('quarantined', 'held')"),
        schema=LEDGER_SCHEMA,
    )
    op.create_index(
        "ix_annotation_quarantine_due", "annotation_quarantine", ["status", "purge_after"], schema=LEDGER_SCHEMA
    )
    op.create_index(
        "ix_annotation_quarantine_dataset", "annotation_quarantine", ["dataset_id", "status"], schema=LEDGER_SCHEMA
    )

    op.create_table(
        "missing_annotation_file",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("annotation_file_id", sa.Integer, nullable=False),
        sa.Column("annotation_id", sa.Integer),
        sa.Column("s3_path", sa.String, nullable=False),
        sa.Column("removed_key", sa.String, nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        schema=LEDGER_SCHEMA,
    )
    op.create_index(
        "ix_missing_annotation_file_annotation_id", "missing_annotation_file", ["annotation_id"], schema=LEDGER_SCHEMA
    )
    op.create_index(
        "uq_missing_annotation_file_open",
        "missing_annotation_file",
        ["annotation_file_id"],
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
        schema=LEDGER_SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("missing_annotation_file", schema=LEDGER_SCHEMA)
    op.drop_table("annotation_quarantine", schema=LEDGER_SCHEMA)
