"""The index on the portal's annotation(s3_metadata_path) that the reconciler's lookups need.

Created only if missing, and CONCURRENTLY so that a live portal database keeps serving
writes. A leftover INVALID index (from an interrupted concurrent build) is rebuilt.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_annotation_s3_metadata_path"
INDEX_SQL = f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON public.annotation (s3_metadata_path)"


def upgrade() -> None:
    bind = op.get_bind()
    owner = bind.exec_driver_sql(
        "SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c "
        "WHERE c.oid = to_regclass('public.annotation') AND c.relkind = 'r'"
    ).scalar()
    if not owner:
        # A least-privilege role cannot index the portal's table: `annotation-reconciler migrate`
        # reports the statement for the table's owner to run (see INDEX_SQL).
        return
    invalid = bind.exec_driver_sql(
        "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %s AND c.relnamespace = 'public'::regnamespace AND NOT i.indisvalid",
        (INDEX,),
    ).first()
    with op.get_context().autocommit_block():
        # Alembic reads the isolation level before switching to AUTOCOMMIT, and under pg8000 that
        # read opens a transaction; end it, or PostgreSQL refuses the concurrent build.
        op.execute("COMMIT")
        if invalid:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS public.{INDEX}")
        op.execute(INDEX_SQL)


def downgrade() -> None:
    # The index may have existed before us (the portal may add it): leaving it is always safe.
    pass
