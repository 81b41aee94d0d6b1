"""The one routine that deletes annotations, used by every path (purge, importer, CLI).

Children first (the portal's foreign keys have no ``ON DELETE CASCADE``), set-based, inside
the caller's transaction, with a JSON snapshot of every deleted row written to the ledger.
The number of statements is fixed (eight) whatever the number of annotations::

    with engine.begin() as conn:
        result = delete_annotations(conn, [12, 13], source=Source.CLI, reason="metadata missing")
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from annotation_reconciler.ledger.models import Source, Status

_SNAPSHOT = text("""
SELECT a.id, r.dataset_id, a.run_id, a.s3_metadata_path,
       jsonb_build_object(
         'annotation', to_jsonb(a),
         'annotation_shape', COALESCE((SELECT jsonb_agg(to_jsonb(s) ORDER BY s.id)
                                       FROM annotation_shape s WHERE s.annotation_id = a.id), '[]'::jsonb),
         'annotation_file', COALESCE((SELECT jsonb_agg(to_jsonb(f) ORDER BY f.id)
                                      FROM annotation_file f JOIN annotation_shape s ON s.id = f.annotation_shape_id
                                      WHERE s.annotation_id = a.id), '[]'::jsonb),
         'annotation_author', COALESCE((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.id)
                                        FROM annotation_author w WHERE w.annotation_id = a.id), '[]'::jsonb),
         'annotation_method_link', COALESCE((SELECT jsonb_agg(to_jsonb(m) ORDER BY m.id)
                                             FROM annotation_method_link m WHERE m.annotation_id = a.id), '[]'::jsonb)
       ) AS snapshot
FROM annotation a LEFT JOIN run r ON r.id = a.run_id
WHERE a.id = ANY(CAST(:ids AS integer[]))
ORDER BY a.id
""")

_DELETES = (
    (
        "annotation_file",
        text("""
        DELETE FROM annotation_file WHERE annotation_shape_id IN
          (SELECT id FROM annotation_shape WHERE annotation_id = ANY(CAST(:ids AS integer[])))"""),
    ),
    ("annotation_shape", text("DELETE FROM annotation_shape WHERE annotation_id = ANY(CAST(:ids AS integer[]))")),
    ("annotation_author", text("DELETE FROM annotation_author WHERE annotation_id = ANY(CAST(:ids AS integer[]))")),
    (
        "annotation_method_link",
        text("DELETE FROM annotation_method_link WHERE annotation_id = ANY(CAST(:ids AS integer[]))"),
    ),
    ("annotation", text("DELETE FROM annotation WHERE id = ANY(CAST(:ids AS integer[])) RETURNING id")),
)

_MARK_PURGED = text("""
UPDATE annotation_quarantine q
SET status = 'purged', resolved_at = :now, resolution = :reason, snapshot = CAST(d.snapshot AS jsonb)
FROM unnest(CAST(:ids AS integer[]), CAST(:snapshots AS text[])) AS d(annotation_id, snapshot)
WHERE q.annotation_id = d.annotation_id AND q.status IN ('quarantined', 'held')
RETURNING q.annotation_id
""")

_INSERT_PURGED = text("""
INSERT INTO annotation_quarantine
  (annotation_id, dataset_id, run_id, s3_metadata_path, metadata_key, source, reason, status,
   detected_at, purge_after, resolved_at, resolution, snapshot)
SELECT d.annotation_id, d.dataset_id, d.run_id, d.path, d.key, :source, :reason, 'purged',
       :now, :now, :now, :reason, CAST(d.snapshot AS jsonb)
FROM unnest(CAST(:ids AS integer[]), CAST(:datasets AS integer[]), CAST(:runs AS integer[]),
            CAST(:paths AS text[]), CAST(:keys AS text[]), CAST(:snapshots AS text[]))
     AS d(annotation_id, dataset_id, run_id, path, key, snapshot)
WHERE NOT (d.annotation_id = ANY(CAST(:updated AS integer[])))
""")


@dataclass
class DeletionResult:
    """What one call deleted: annotation ids and row counts per table."""

    annotation_ids: list[int] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def deleted(self) -> int:
        return len(self.annotation_ids)


def delete_annotations(
    conn: Connection,
    annotation_ids: Sequence[int],
    *,
    source: Source,
    reason: str,
    metadata_keys: Mapping[int, str | None] | None = None,
    now: datetime.datetime | None = None,
) -> DeletionResult:
    """Delete the annotations and all their children in the caller's transaction; audit each one.

    An open ledger row (quarantined or held) of a deleted annotation becomes ``purged`` with the
    snapshot; an annotation without one gets a new ``purged`` row with ``source``. Ids that no
    longer exist are ignored (another run already deleted them).
    """
    result = DeletionResult()
    ids = sorted(set(annotation_ids))
    if not ids:
        return result
    now = now or datetime.datetime.now(datetime.UTC)
    rows = conn.execute(_SNAPSHOT, {"ids": ids}).all()
    if not rows:
        return result
    ids = [r.id for r in rows]
    deleted: set[int] = set()
    for table, statement in _DELETES:
        outcome = conn.execute(statement, {"ids": ids})
        if table == "annotation":
            # Only what this call deleted is audited: a concurrent deleter may have won a row
            # (no row lock is taken, so the role needs no UPDATE privilege on the portal tables).
            deleted = set(outcome.scalars())
            result.rows[table] = len(deleted)
        else:
            result.rows[table] = outcome.rowcount
    rows = [r for r in rows if r.id in deleted]
    ids = [r.id for r in rows]
    if not ids:
        return result
    snapshots = [json.dumps(r.snapshot) if not isinstance(r.snapshot, str) else r.snapshot for r in rows]
    updated = (
        conn.execute(_MARK_PURGED, {"ids": ids, "snapshots": snapshots, "now": now, "reason": reason}).scalars().all()
    )
    keys = metadata_keys or {}
    conn.execute(
        _INSERT_PURGED,
        {
            "ids": ids,
            "datasets": [r.dataset_id for r in rows],
            "runs": [r.run_id for r in rows],
            "paths": [r.s3_metadata_path for r in rows],
            "keys": [keys.get(r.id) for r in rows],
            "snapshots": snapshots,
            "updated": list(updated),
            "source": source.value,
            "reason": reason,
            "now": now,
        },
    )
    result.annotation_ids = ids
    result.snapshots = {r.id: (json.loads(s)) for r, s in zip(rows, snapshots, strict=True)}
    return result


__all__ = ["DeletionResult", "Status", "delete_annotations"]
