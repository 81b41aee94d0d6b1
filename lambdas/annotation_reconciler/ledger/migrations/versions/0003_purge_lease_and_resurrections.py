"""A lease for the purge's claims, and the record of purged annotations whose metadata came back.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from annotation_reconciler.ledger import LEDGER_SCHEMA

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The purge claims due rows with a lease and commits, checks S3 holding no lock, then re-locks
    # what is still due: a claim whose lease has run out (a crashed purge) is taken again.
    op.add_column("annotation_quarantine", sa.Column("claimed_until", sa.DateTime(timezone=True)), schema=LEDGER_SCHEMA)
    op.create_table(
        "annotation_resurrection",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("quarantine_id", sa.BigInteger, nullable=False),
        sa.Column("annotation_id", sa.Integer, nullable=False),
        sa.Column("dataset_id", sa.Integer),
        sa.Column("metadata_key", sa.String, nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("found_by", sa.String(16), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("found_by IN ('event', 'scan')", name="ck_annotation_resurrection_found_by"),
        schema=LEDGER_SCHEMA,
    )
    op.create_index(
        "uq_annotation_resurrection_quarantine",
        "annotation_resurrection",
        ["quarantine_id"],
        unique=True,
        schema=LEDGER_SCHEMA,
    )
    # The key's spelling-blind form (lifecycle.canonical): a purged key that comes back spelled differently
    # (another Unicode normal form, another case) is a resurrection too.
    op.add_column("annotation_quarantine", sa.Column("metadata_key_folded", sa.String), schema=LEDGER_SCHEMA)
    op.create_index(
        "ix_annotation_quarantine_metadata_key_folded",
        "annotation_quarantine",
        ["metadata_key_folded"],
        schema=LEDGER_SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_annotation_quarantine_metadata_key_folded", "annotation_quarantine", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "metadata_key_folded", schema=LEDGER_SCHEMA)
    op.drop_table("annotation_resurrection", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "claimed_until", schema=LEDGER_SCHEMA)
