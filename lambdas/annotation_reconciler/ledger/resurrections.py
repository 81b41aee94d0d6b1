"""Purged annotations whose metadata key is found in S3 again: record them once, and list the purged keys a
scan looks for.

Functions take a Connection in the caller's transaction; none of them commits.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from sqlalchemy import Connection, text

from annotation_reconciler.db import text_array
from annotation_reconciler.rules.listings import canonical
from annotation_reconciler.rules.scope import Scope

#: Record the resurrections (:func:`record_resurrections`); the events path runs it inside a larger statement
#: (``ledger/event_batch.py``), so its parameters are named ``r_*`` (``:now`` is shared).
RECORD_SQL = """INSERT INTO annotation_reconciler.annotation_resurrection
                  (quarantine_id, annotation_id, dataset_id, metadata_key, purged_at, found_at, found_by)
                SELECT q.id, q.annotation_id, q.dataset_id, q.metadata_key, q.resolved_at, :now, :r_found_by
                FROM annotation_reconciler.annotation_quarantine q
                WHERE q.status = 'purged' AND q.metadata_key_folded = ANY(CAST(:r_folded AS text[]))
                  AND q.resolved_at >= :r_since
                ON CONFLICT (quarantine_id) DO NOTHING
                RETURNING annotation_id, metadata_key"""


def record_params(
    keys: Sequence[str], *, now: datetime.datetime, since: datetime.datetime, found_by: str
) -> dict[str, object]:
    """The parameters of :data:`RECORD_SQL`."""
    folded = text_array(sorted({canonical(k) for k in keys}))
    return {"r_folded": folded, "now": now, "r_since": since, "r_found_by": found_by}


def record_resurrections(
    conn: Connection, keys: Sequence[str], *, now: datetime.datetime, since: datetime.datetime, found_by: str
) -> list[tuple[int, str]]:
    """Record, once each, the annotations purged since ``since`` whose metadata key is among ``keys`` in any
    spelling (found in S3 again). Returns (annotation id, purged key) of those newly recorded."""
    if not keys:
        return []
    rows = conn.execute(text(RECORD_SQL), record_params(keys, now=now, since=since, found_by=found_by)).all()
    return sorted((r[0], r[1]) for r in rows)


def purged_keys_in_scope(conn: Connection, scope: Scope, *, since: datetime.datetime) -> list[str]:
    """Metadata keys of the scope's annotations purged since ``since`` (a scan looks for them too)."""
    rows = conn.execute(
        text("""SELECT DISTINCT metadata_key FROM annotation_reconciler.annotation_quarantine
                WHERE status = 'purged' AND metadata_key IS NOT NULL AND resolved_at >= :since
                  AND (CAST(:dataset_id AS integer) IS NULL OR dataset_id = :dataset_id)
                  AND (CAST(:run_ids AS integer[]) IS NULL OR run_id = ANY(CAST(:run_ids AS integer[])))
                ORDER BY 1"""),
        {
            "since": since,
            "dataset_id": scope.dataset_id,
            "run_ids": list(scope.run_ids) if scope.run_ids is not None else None,
        },
    ).scalars()
    return list(rows)


def open_keys(conn: Connection) -> list[tuple[int, str]]:
    """(resurrection id, metadata key) of every open resurrection."""
    rows = conn.execute(
        text("""SELECT id, metadata_key FROM annotation_reconciler.annotation_resurrection
                WHERE resolved_at IS NULL ORDER BY id""")
    ).all()
    return [(r[0], r[1]) for r in rows]


def close(conn: Connection, resurrection_ids: Sequence[int], *, now: datetime.datetime) -> int:
    """Close these resurrections (their annotation is back in the portal); returns how many."""
    if not resurrection_ids:
        return 0
    return conn.execute(
        text("""UPDATE annotation_reconciler.annotation_resurrection SET resolved_at = :now
                WHERE resolved_at IS NULL AND id = ANY(CAST(:ids AS bigint[]))"""),
        {"ids": list(resurrection_ids), "now": now},
    ).rowcount
