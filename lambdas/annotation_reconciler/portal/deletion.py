"""The one routine that deletes annotations, used by every path (purge, importer, CLI).

Children first (the portal's foreign keys have no ``ON DELETE CASCADE``), set-based, inside
the caller's transaction, with a JSON snapshot of every deleted row written to the ledger.
The number of statements is fixed (twelve) whatever the number of annotations, and the snapshots
never leave the server. Each annotation is deleted only while its stored path is still the one it
was judged on::

    with engine.begin() as conn:
        result = delete_annotations(conn, {12: "s3://b/…/a-1.0.json"}, source=Source.CLI, reason="metadata missing")
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, TextClause, text

from annotation_reconciler.errors import ConcurrentChangeError
from annotation_reconciler.ledger.models import OPEN_STATUS_LIST, Source, Status
from annotation_reconciler.lifecycle import canonical

_DROP = text("DROP TABLE IF EXISTS pg_temp.reconciler_deleted, pg_temp.reconciler_deletion_snapshot")
_CREATE_DELETED = text(
    "CREATE TEMPORARY TABLE reconciler_deleted (annotation_id integer, tbl text, row jsonb) ON COMMIT DROP"
)
# The rows to delete: only those whose stored path is still the one that was judged.
_TARGETS = text("""
SELECT a.id FROM annotation a
JOIN unnest(CAST(:ids AS integer[]), CAST(:paths AS text[])) AS e(id, path)
  ON a.id = e.id AND a.s3_metadata_path = e.path
ORDER BY a.id
""")

#: The child tables that hold an ``annotation_id`` column: the only names _delete_children is given.
_CHILDREN_WITH_ANNOTATION_ID = ("annotation_shape", "annotation_author", "annotation_method_link")


def _delete_children(table: str) -> TextClause:
    """DELETE the rows of ``table`` (a child with an ``annotation_id``) of the given annotations, writing each
    removed row, from the DELETE's own RETURNING, into the snapshot table."""
    return text(f"""
        WITH d AS (DELETE FROM {table} c WHERE c.annotation_id = ANY(CAST(:ids AS integer[]))
                   RETURNING c.annotation_id AS aid, to_jsonb(c) AS row)
        INSERT INTO reconciler_deleted SELECT aid, '{table}', row FROM d""")  # noqa: S608 (constant table names)


# Children first (the portal's foreign keys have no ON DELETE CASCADE). Each DELETE writes what it
# removed, from its own RETURNING, into the snapshot table: the audit is what went, not what a
# separate read saw before (a child committed after that read would be deleted unrecorded).
_DELETES = (
    (
        "annotation_file",  # files hang off shapes: found through their shape's annotation
        text("""
        WITH d AS (DELETE FROM annotation_file f USING annotation_shape s
                   WHERE f.annotation_shape_id = s.id AND s.annotation_id = ANY(CAST(:ids AS integer[]))
                   RETURNING s.annotation_id AS aid, to_jsonb(f) AS row)
        INSERT INTO reconciler_deleted SELECT aid, 'annotation_file', row FROM d"""),
    ),
    *((table, _delete_children(table)) for table in _CHILDREN_WITH_ANNOTATION_ID),
)
# The annotation itself, again only where the stored path is still the judged one: a concurrent
# rewrite of the path (the portal's importer) makes the row not match, and the caller rolls back.
_DELETE_ANNOTATIONS = text("""
WITH d AS (DELETE FROM annotation a
           USING unnest(CAST(:ids AS integer[]), CAST(:paths AS text[])) AS e(id, path)
           WHERE a.id = e.id AND a.s3_metadata_path = e.path
           RETURNING a.id AS aid, to_jsonb(a) AS row)
INSERT INTO reconciler_deleted SELECT aid, 'annotation', row FROM d RETURNING annotation_id
""")
_SNAPSHOT = text("""
CREATE TEMPORARY TABLE reconciler_deletion_snapshot ON COMMIT DROP AS
WITH grouped AS (
  SELECT c.annotation_id AS id,
         (array_agg(c.row) FILTER (WHERE c.tbl = 'annotation'))[1] AS annotation,
         jsonb_agg(c.row ORDER BY CAST(c.row ->> 'id' AS bigint)) FILTER (WHERE c.tbl = 'annotation_shape') AS shapes,
         jsonb_agg(c.row ORDER BY CAST(c.row ->> 'id' AS bigint)) FILTER (WHERE c.tbl = 'annotation_file') AS files,
         jsonb_agg(c.row ORDER BY CAST(c.row ->> 'id' AS bigint)) FILTER (WHERE c.tbl = 'annotation_author') AS authors,
         jsonb_agg(c.row ORDER BY CAST(c.row ->> 'id' AS bigint)) FILTER (WHERE c.tbl = 'annotation_method_link')
           AS links
  FROM reconciler_deleted c GROUP BY c.annotation_id
)
SELECT g.id, r.dataset_id, CAST(g.annotation ->> 'run_id' AS integer) AS run_id,
       g.annotation ->> 's3_metadata_path' AS s3_metadata_path,
       jsonb_build_object(
         'annotation', g.annotation,
         'annotation_shape', COALESCE(g.shapes, '[]'::jsonb),
         'annotation_file', COALESCE(g.files, '[]'::jsonb),
         'annotation_author', COALESCE(g.authors, '[]'::jsonb),
         'annotation_method_link', COALESCE(g.links, '[]'::jsonb)
       ) AS snapshot
FROM grouped g LEFT JOIN run r ON r.id = CAST(g.annotation ->> 'run_id' AS integer)
WHERE g.annotation IS NOT NULL
""")

_MARK_PURGED = text(f"""
UPDATE annotation_quarantine q
SET status = 'purged', resolved_at = :now, resolution = :reason, snapshot = d.snapshot, claimed_until = NULL
FROM reconciler_deletion_snapshot d
WHERE q.annotation_id = d.id AND q.status IN {OPEN_STATUS_LIST}
RETURNING q.annotation_id
""")  # noqa: S608 (a constant of ledger/models.py)

_INSERT_PURGED = text("""
INSERT INTO annotation_quarantine
  (annotation_id, dataset_id, run_id, s3_metadata_path, metadata_key, metadata_key_folded, source, reason, status,
   detected_at, purge_after, resolved_at, resolution, snapshot)
SELECT d.id, d.dataset_id, d.run_id, d.s3_metadata_path, k.key, k.folded, :source, :reason, 'purged',
       :now, :now, :now, :reason, d.snapshot
FROM reconciler_deletion_snapshot d
LEFT JOIN unnest(CAST(:key_ids AS integer[]), CAST(:keys AS text[]), CAST(:folded AS text[])) AS k(id, key, folded)
  ON k.id = d.id
WHERE NOT (d.id = ANY(CAST(:updated AS integer[])))
""")


_ORPHANS = text("""
SELECT (SELECT count(*) FROM annotation_shape s WHERE NOT EXISTS
          (SELECT 1 FROM annotation a WHERE a.id = s.annotation_id))
     + (SELECT count(*) FROM annotation_file f WHERE NOT EXISTS
          (SELECT 1 FROM annotation_shape s WHERE s.id = f.annotation_shape_id))
     + (SELECT count(*) FROM annotation_author w WHERE NOT EXISTS
          (SELECT 1 FROM annotation a WHERE a.id = w.annotation_id))
     + (SELECT count(*) FROM annotation_method_link m WHERE NOT EXISTS
          (SELECT 1 FROM annotation a WHERE a.id = m.annotation_id))""")


def count_orphans(conn: Connection) -> int:
    """Child rows whose parent is gone: what a deletion that skipped a child table would leave behind."""
    return int(conn.execute(_ORPHANS).scalar_one())


@dataclass
class DeletionResult:
    """What one call deleted: annotation ids and row counts per table."""

    deleted: list[int] = field(default_factory=list)
    rows_deleted: dict[str, int] = field(default_factory=dict)


def delete_annotations(
    conn: Connection,
    expected_paths: Mapping[int, str],
    *,
    source: Source,
    reason: str,
    metadata_keys: Mapping[int, str | None] | None = None,
    now: datetime.datetime | None = None,
) -> DeletionResult:
    """Delete the annotations (id -> the stored path they were judged on) and all their children in
    the caller's transaction; audit each one with a snapshot of exactly the rows deleted.

    A row whose stored path is no longer the judged one is not deleted (and is not in the result);
    one that changes *during* the call raises :class:`ConcurrentChangeError` (roll back). An open
    ledger row (quarantined or held) of a deleted annotation becomes ``purged`` with the snapshot;
    an annotation without one gets a new ``purged`` row with ``source``. Ids that no longer exist
    are ignored (another run already deleted them).
    """
    result = DeletionResult()
    if not expected_paths:
        return result
    pairs = sorted(expected_paths.items())
    params = {"ids": [i for i, _ in pairs], "paths": [p for _, p in pairs]}
    ids = list(conn.execute(_TARGETS, params).scalars())
    if not ids:
        return result
    now = now or datetime.datetime.now(datetime.UTC)
    conn.execute(_DROP)  # a second call in the same transaction starts afresh
    conn.execute(_CREATE_DELETED)
    for table, statement in _DELETES:
        result.rows_deleted[table] = conn.execute(statement, {"ids": ids}).rowcount
    targets = {i: expected_paths[i] for i in ids}
    deleted = sorted(
        conn.execute(_DELETE_ANNOTATIONS, {"ids": list(targets), "paths": list(targets.values())}).scalars()
    )
    if deleted != ids:
        changed = sorted(set(ids) - set(deleted))
        raise ConcurrentChangeError(
            f"annotations {changed[:10]} changed while being deleted (stored path rewritten); nothing of this batch "
            "is deleted"
        )
    result.rows_deleted["annotation"] = len(deleted)
    conn.execute(_SNAPSHOT)
    updated = conn.execute(_MARK_PURGED, {"now": now, "reason": reason}).scalars().all()
    keys = {k: v for k, v in (metadata_keys or {}).items() if v is not None}
    conn.execute(
        _INSERT_PURGED,
        {
            "updated": list(updated),
            "key_ids": list(keys),
            "keys": list(keys.values()),
            "folded": [canonical(k) for k in keys.values()],
            "source": source.value,
            "reason": reason,
            "now": now,
        },
    )
    conn.execute(_DROP)
    result.deleted = deleted
    return result


__all__ = ["ConcurrentChangeError", "DeletionResult", "Status", "count_orphans", "delete_annotations"]
