"""The deletion audit the reconciler's roles cannot write, and the one function that deletes portal rows.

Until 0005 the snapshot of a purged annotation was a column of ``annotation_quarantine``, a table the
reconciler's roles write: a stolen password could rewrite what ``restore`` puts back. From here:

- ``annotation_reconciler_audit.deleted_annotation`` holds, per deleted annotation, exactly the rows that
  went. The roles get SELECT on it (``annotation-reconciler grants``), nothing else.
- ``annotation_reconciler_audit.delete_annotations(ids, paths, source, reason, now)`` is the only way the roles
  delete portal rows (they no longer hold DELETE on the portal's tables). It runs with its owner's rights
  (the portal owner, who runs ``migrate``), with ``search_path = pg_catalog, pg_temp`` and every name
  qualified: it deletes only annotations whose stored path is still the judged one, children first, and
  writes each removed row, from the DELETEs' own RETURNING, into the audit before it returns.
- Existing snapshots move into the audit (``deleted_by`` says they came from the ledger before 0006), and the
  column and its check go.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from annotation_reconciler.ledger import AUDIT_SCHEMA, LEDGER_SCHEMA

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: The deleting function as of this revision (a later revision that changes it replaces it whole).
#: Its SQLSTATE RC409 says "a judged path changed while deleting": the caller's batch rolls back.
_DELETE_FUNCTION = r"""
CREATE OR REPLACE FUNCTION annotation_reconciler_audit.delete_annotations(
    p_ids integer[], p_paths text[], p_source text, p_reason text, p_now timestamptz)
RETURNS TABLE (r_annotation_id integer, r_dataset_id integer, r_run_id integer, r_path text,
               r_shapes integer, r_files integer, r_authors integer, r_links integer)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict error
DECLARE
    v_ids integer[];
    v_deleted integer[];
    v_rows jsonb := '[]'::jsonb;
    v_part jsonb;
BEGIN
    IF p_source IS NULL OR p_source NOT IN ('event', 'scan', 'importer', 'cli') THEN
        RAISE EXCEPTION 'delete_annotations: source % is not event, scan, importer or cli', p_source
            USING ERRCODE = '22023';
    END IF;
    IF p_reason IS NULL OR p_now IS NULL THEN
        RAISE EXCEPTION 'delete_annotations: a reason and a time are required' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.cardinality(p_ids) IS DISTINCT FROM pg_catalog.cardinality(p_paths) THEN
        RAISE EXCEPTION 'delete_annotations: % ids but % paths', pg_catalog.cardinality(p_ids),
            pg_catalog.cardinality(p_paths) USING ERRCODE = '22023';
    END IF;
    -- Only the annotations whose stored path is still the one that was judged.
    SELECT COALESCE(pg_catalog.array_agg(DISTINCT a.id ORDER BY a.id), '{}'::integer[]) INTO v_ids
    FROM public.annotation a
    JOIN unnest(p_ids, p_paths) AS e(id, path) ON a.id = e.id AND a.s3_metadata_path = e.path;
    IF pg_catalog.cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    -- Children first (the portal's foreign keys have no ON DELETE CASCADE); each DELETE's own RETURNING is
    -- what the audit records, not an earlier read.
    WITH d AS (
        DELETE FROM public.annotation_file f USING public.annotation_shape s
        WHERE f.annotation_shape_id = s.id AND s.annotation_id = ANY (v_ids)
        RETURNING s.annotation_id AS aid, pg_catalog.to_jsonb(f.*) AS row)
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(d.aid, 'annotation_file', d.row)), '[]')
    INTO v_part FROM d;
    v_rows := v_rows OPERATOR(pg_catalog.||) v_part;
{children}    -- The annotations, again only where the stored path is still the judged one.
    WITH d AS (
        DELETE FROM public.annotation a USING unnest(p_ids, p_paths) AS e(id, path)
        WHERE a.id = e.id AND a.s3_metadata_path = e.path AND a.id = ANY (v_ids)
        RETURNING a.id AS aid, pg_catalog.to_jsonb(a.*) AS row)
    SELECT COALESCE(pg_catalog.array_agg(d.aid ORDER BY d.aid), '{}'::integer[]),
           COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(d.aid, 'annotation', d.row)), '[]')
    INTO v_deleted, v_part FROM d;
    v_rows := v_rows OPERATOR(pg_catalog.||) v_part;
    IF v_deleted IS DISTINCT FROM v_ids THEN
        RAISE EXCEPTION 'annotations % changed while being deleted (stored path rewritten); %',
            (SELECT pg_catalog.array_agg(x ORDER BY x) FROM pg_catalog.unnest(v_ids) x
             WHERE NOT x = ANY (v_deleted)),
            'nothing of this batch is deleted'
            USING ERRCODE = 'RC409';
    END IF;
    RETURN QUERY
    WITH parts AS (
        SELECT (p.value ->> 0)::integer AS aid, p.value ->> 1 AS tbl, p.value -> 2 AS row
        FROM pg_catalog.jsonb_array_elements(v_rows) AS p(value)
    ), grouped AS (
        SELECT parts.aid,
               (pg_catalog.array_agg(parts.row) FILTER (WHERE parts.tbl = 'annotation'))[1] AS annotation,
               COALESCE(pg_catalog.jsonb_agg(parts.row ORDER BY (parts.row ->> 'id')::bigint)
                        FILTER (WHERE parts.tbl = 'annotation_shape'), '[]') AS shapes,
               COALESCE(pg_catalog.jsonb_agg(parts.row ORDER BY (parts.row ->> 'id')::bigint)
                        FILTER (WHERE parts.tbl = 'annotation_file'), '[]') AS files,
               COALESCE(pg_catalog.jsonb_agg(parts.row ORDER BY (parts.row ->> 'id')::bigint)
                        FILTER (WHERE parts.tbl = 'annotation_author'), '[]') AS authors,
               COALESCE(pg_catalog.jsonb_agg(parts.row ORDER BY (parts.row ->> 'id')::bigint)
                        FILTER (WHERE parts.tbl = 'annotation_method_link'), '[]') AS links
        FROM parts GROUP BY parts.aid
    ), written AS (
        INSERT INTO annotation_reconciler_audit.deleted_annotation
            (annotation_id, dataset_id, run_id, s3_metadata_path, source, reason, deleted_at, deleted_by, snapshot)
        SELECT g.aid, r.dataset_id, (g.annotation ->> 'run_id')::integer, g.annotation ->> 's3_metadata_path',
               p_source, p_reason, p_now, SESSION_USER,
               pg_catalog.jsonb_build_object(
                   'annotation', g.annotation, 'annotation_shape', g.shapes, 'annotation_file', g.files,
                   'annotation_author', g.authors, 'annotation_method_link', g.links)
        FROM grouped g LEFT JOIN public.run r ON r.id = (g.annotation ->> 'run_id')::integer
        WHERE g.annotation IS NOT NULL
        RETURNING annotation_id AS aid, dataset_id AS did, run_id AS rid, s3_metadata_path AS path, snapshot AS snap
    )
    SELECT w.aid, w.did, w.rid, w.path::text,
           pg_catalog.jsonb_array_length(w.snap -> 'annotation_shape'),
           pg_catalog.jsonb_array_length(w.snap -> 'annotation_file'),
           pg_catalog.jsonb_array_length(w.snap -> 'annotation_author'),
           pg_catalog.jsonb_array_length(w.snap -> 'annotation_method_link')
    FROM written w ORDER BY w.aid;
END
$fn$
"""

#: The children keyed by annotation_id, each deleted the same way (the files go first, through their shapes).
_CHILD_TABLES = ("annotation_shape", "annotation_author", "annotation_method_link")


#: One child table's DELETE (``@table``), with its RETURNING collected for the audit.
_CHILD_DELETE = r"""    WITH d AS (
        DELETE FROM public.@table c WHERE c.annotation_id = ANY (v_ids)
        RETURNING c.annotation_id AS aid, pg_catalog.to_jsonb(c.*) AS row)
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(d.aid, '@table', d.row)),@wrap'[]')
    INTO v_part FROM d;
    v_rows := v_rows OPERATOR(pg_catalog.||) v_part;
"""


def _delete_children(table: str) -> str:
    wrap = "\n                    " if table == "annotation_method_link" else " "  # as first written: same text
    return _CHILD_DELETE.replace("@table", table).replace("@wrap", wrap)


DELETE_FUNCTION = _DELETE_FUNCTION.replace("{children}", "".join(_delete_children(t) for t in _CHILD_TABLES))


DROP_FUNCTION = (
    "DROP FUNCTION IF EXISTS annotation_reconciler_audit.delete_annotations(integer[], text[], text, text, timestamptz)"
)
#: Only the roles `annotation-reconciler grants` names may call it (PostgreSQL grants EXECUTE to PUBLIC by default).
REVOKE_PUBLIC = (
    "REVOKE ALL ON FUNCTION annotation_reconciler_audit.delete_annotations(integer[], text[], text, text, "
    "timestamptz) FROM PUBLIC"
)

MOVE_SNAPSHOTS = """
INSERT INTO annotation_reconciler_audit.deleted_annotation
    (annotation_id, dataset_id, run_id, s3_metadata_path, source, reason, deleted_at, deleted_by, snapshot,
     restored_at, restored_by)
SELECT q.annotation_id, q.dataset_id, q.run_id, q.s3_metadata_path, q.source, COALESCE(q.resolution, q.reason),
       COALESCE(q.resolved_at, q.detected_at), 'ledger before 0006', q.snapshot,
       q.restored_at, CASE WHEN q.restored_at IS NOT NULL THEN q.resolved_by END
FROM annotation_reconciler.annotation_quarantine q
WHERE q.snapshot IS NOT NULL
ORDER BY q.id
"""

MOVE_SNAPSHOTS_BACK = """
UPDATE annotation_reconciler.annotation_quarantine q SET snapshot = d.snapshot
FROM (SELECT DISTINCT ON (annotation_id) annotation_id, snapshot FROM annotation_reconciler_audit.deleted_annotation
      ORDER BY annotation_id, id DESC) d
WHERE q.annotation_id = d.annotation_id AND q.status IN ('purged', 'restored')
"""


def upgrade() -> None:
    op.create_table(
        "deleted_annotation",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("annotation_id", sa.Integer, nullable=False),
        sa.Column("dataset_id", sa.Integer),
        sa.Column("run_id", sa.Integer),
        sa.Column("s3_metadata_path", sa.String, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_by", sa.String, nullable=False),
        sa.Column("snapshot", JSONB, nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True)),
        sa.Column("restored_by", sa.String),
        sa.CheckConstraint("source IN ('event', 'scan', 'importer', 'cli')", name="ck_deleted_annotation_source"),
        schema=AUDIT_SCHEMA,
    )
    op.create_index("ix_deleted_annotation_annotation_id", "deleted_annotation", ["annotation_id"], schema=AUDIT_SCHEMA)
    op.create_index(
        "ix_deleted_annotation_dataset", "deleted_annotation", ["dataset_id", "deleted_at"], schema=AUDIT_SCHEMA
    )
    op.execute(MOVE_SNAPSHOTS)
    op.drop_constraint("ck_annotation_quarantine_snapshot", "annotation_quarantine", schema=LEDGER_SCHEMA)
    op.drop_column("annotation_quarantine", "snapshot", schema=LEDGER_SCHEMA)
    op.execute(DELETE_FUNCTION)
    op.execute(REVOKE_PUBLIC)


def downgrade() -> None:
    op.execute(DROP_FUNCTION)
    op.add_column("annotation_quarantine", sa.Column("snapshot", JSONB), schema=LEDGER_SCHEMA)
    op.execute(MOVE_SNAPSHOTS_BACK)
    op.execute(
        "UPDATE annotation_reconciler.annotation_quarantine SET status = 'released' "
        "WHERE status = 'purged' AND snapshot IS NULL"
    )
    op.create_check_constraint(
        "ck_annotation_quarantine_snapshot",
        "annotation_quarantine",
        "status <> 'purged' OR snapshot IS NOT NULL",
        schema=LEDGER_SCHEMA,
    )
    op.drop_table("deleted_annotation", schema=AUDIT_SCHEMA)
