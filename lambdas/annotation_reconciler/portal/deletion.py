"""The one routine that deletes annotations, used by every path (purge, importer, CLI).

The portal rows go through one database function, ``annotation_reconciler_audit.delete_annotations``
(migration 0006): it runs with its owner's rights (the reconciler's roles hold no DELETE on the portal's
tables), deletes children first (the portal's foreign keys have no ``ON DELETE CASCADE``), set-based, only the
annotations whose stored path is still the one they were judged on, and writes a snapshot of exactly the rows
its DELETEs returned into the audit, a table the reconciler's roles may read but never write: ``restore`` trusts
nothing else. This module then closes the ledger's rows, in the caller's transaction. Three statements,
whatever the number of annotations; the snapshots never leave the server::

    with engine.begin() as conn:
        result = delete_annotations(conn, {12: "s3://b/…/a-1.0.json"}, source=Source.CLI, reason="metadata missing")
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from annotation_reconciler.errors import ConcurrentChangeError
from annotation_reconciler.ledger import OPEN_STATUS_LIST, Source, Status
from annotation_reconciler.rules.listings import canonical

#: SQLSTATE of the function's "a judged path changed while deleting" (the batch rolls back).
CHANGED_SQLSTATE = "RC409"
# The function deletes and audits; it returns one row per deleted annotation with its child counts.
_DELETE = text("""
SELECT r_annotation_id, r_dataset_id, r_run_id, r_path, r_shapes, r_files, r_authors, r_links
FROM annotation_reconciler_audit.delete_annotations(
  CAST(:ids AS integer[]), CAST(:paths AS text[]), CAST(:source AS text), CAST(:reason AS text),
  CAST(:now AS timestamptz))
""")

_MARK_PURGED = text(f"""
UPDATE annotation_reconciler.annotation_quarantine q
SET status = 'purged', resolved_at = :now, resolution = :reason, claimed_until = NULL
WHERE q.annotation_id = ANY(CAST(:ids AS integer[])) AND q.status IN {OPEN_STATUS_LIST}
RETURNING q.annotation_id
""")  # noqa: S608 (a constant of ledger/models.py)

_INSERT_PURGED = text("""
INSERT INTO annotation_reconciler.annotation_quarantine
  (annotation_id, dataset_id, run_id, s3_metadata_path, metadata_key, metadata_key_folded, source, reason, status,
   detected_at, purge_after, resolved_at, resolution)
SELECT d.id, d.dataset_id, d.run_id, d.path, k.key, k.folded, :source, :reason, 'purged',
       :now, :now, :now, :reason
FROM unnest(CAST(:ids AS integer[]), CAST(:datasets AS integer[]), CAST(:runs AS integer[]), CAST(:paths AS text[]))
  AS d(id, dataset_id, run_id, path)
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
class DeletedRows:
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
) -> DeletedRows:
    """Delete the annotations (id -> the stored path they were judged on) and all their children in
    the caller's transaction; audit each one with a snapshot of exactly the rows deleted.

    A row whose stored path is no longer the judged one is not deleted (and is not in the result);
    one that changes *during* the call raises :class:`ConcurrentChangeError` (roll back). An open
    ledger row (quarantined or held) of a deleted annotation becomes ``purged``; an annotation without
    one gets a new ``purged`` row with ``source``. The snapshot is in the audit, written by the function.
    Ids that no longer exist are ignored (another run already deleted them).
    """
    result = DeletedRows()
    if not expected_paths:
        return result
    now = now or datetime.datetime.now(datetime.UTC)
    pairs = sorted(expected_paths.items())
    params = {"ids": [i for i, _ in pairs], "paths": [p for _, p in pairs], "source": source.value, "reason": reason}
    try:
        rows = conn.execute(_DELETE, {**params, "now": now}).all()
    except DBAPIError as exc:
        if sqlstate(exc) == CHANGED_SQLSTATE:
            raise ConcurrentChangeError(message_of(exc)) from None
        raise
    if not rows:
        return result
    deleted = [r.r_annotation_id for r in rows]
    result.rows_deleted = {
        "annotation_file": sum(r.r_files for r in rows),
        "annotation_shape": sum(r.r_shapes for r in rows),
        "annotation_author": sum(r.r_authors for r in rows),
        "annotation_method_link": sum(r.r_links for r in rows),
        "annotation": len(rows),
    }
    updated = conn.execute(_MARK_PURGED, {"ids": deleted, "now": now, "reason": reason}).scalars().all()
    keys = {k: v for k, v in (metadata_keys or {}).items() if v is not None}
    conn.execute(
        _INSERT_PURGED,
        {
            "ids": deleted,
            "datasets": [r.r_dataset_id for r in rows],
            "runs": [r.r_run_id for r in rows],
            "paths": [r.r_path for r in rows],
            "updated": list(updated),
            "key_ids": list(keys),
            "keys": list(keys.values()),
            "folded": [canonical(k) for k in keys.values()],
            "source": source.value,
            "reason": reason,
            "now": now,
        },
    )
    result.deleted = deleted
    return result


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a pg8000 error (its first argument is the server's error fields)."""
    args = getattr(exc.orig, "args", ())
    return args[0].get("C") if args and isinstance(args[0], dict) else None


def message_of(exc: DBAPIError) -> str:
    """The server's own message of a pg8000 error."""
    args = getattr(exc.orig, "args", ())
    return str(args[0].get("M")) if args and isinstance(args[0], dict) else str(exc.orig)


__all__ = ["ConcurrentChangeError", "DeletedRows", "Status", "count_orphans", "delete_annotations"]
