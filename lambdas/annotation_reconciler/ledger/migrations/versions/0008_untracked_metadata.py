"""Metadata in S3 that no annotation row points to (untracked), and the row it may be the move of.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from annotation_reconciler.ledger import LEDGER_SCHEMA

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per metadata key a scan (or an S3 Inventory) found with no annotation row pointing to it; open until
    # a listing of its prefix shows it tracked (ingested) or gone.
    op.create_table(
        "untracked_metadata",
        sa.Column("metadata_key", sa.String, primary_key=True),
        sa.Column("prefix", sa.String, nullable=False),
        sa.Column("dataset_id", sa.Integer),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moved_annotation_id", sa.Integer),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        schema=LEDGER_SCHEMA,
    )
    op.create_index(
        "ix_untracked_metadata_prefix", "untracked_metadata", ["prefix", "resolved_at"], schema=LEDGER_SCHEMA
    )


def downgrade() -> None:
    op.drop_table("untracked_metadata", schema=LEDGER_SCHEMA)
