"""What-if variants of two hot spots in ``lambdas/``, to size the changes BENCHMARKS.md recommends.

Nothing here replaces the project's code: the benchmarks measure ``lambdas/`` as it is and print
these beside it, labelled "what-if".

- :func:`delete_annotations_server_side`: ``portal.deletion.delete_annotations`` with the JSON
  snapshots kept inside PostgreSQL (a temporary table filled by the same snapshot query, then
  ``UPDATE … FROM`` / ``INSERT … SELECT``), instead of fetching every snapshot into Python and sending
  it back twice as a ``text[]`` parameter, which pg8000 encodes in pure Python.
- :func:`tcp_nodelay`: ``TCP_NODELAY`` on pg8000's socket. Without it a statement whose parameters
  overflow pg8000's 8 KiB write buffer goes out in several TCP segments, and Nagle's algorithm holds
  the last one until the server's delayed ACK (~40 ms on Linux).
"""

from __future__ import annotations

import datetime
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, event, text

from annotation_reconciler.ledger.models import Source
from annotation_reconciler.portal import deletion

_SNAPSHOT_INTO_TEMP = text("CREATE TEMPORARY TABLE bench_snapshot ON COMMIT DROP AS " + deletion._SNAPSHOT.text)

_MARK_PURGED = text("""
UPDATE annotation_quarantine q
SET status = 'purged', resolved_at = :now, resolution = :reason, snapshot = s.snapshot
FROM bench_snapshot s
WHERE q.annotation_id = s.id AND s.id = ANY(CAST(:ids AS integer[])) AND q.status IN ('quarantined', 'held')
RETURNING q.annotation_id
""")

_INSERT_PURGED = text("""
INSERT INTO annotation_quarantine
  (annotation_id, dataset_id, run_id, s3_metadata_path, metadata_key, source, reason, status,
   detected_at, purge_after, resolved_at, resolution, snapshot)
SELECT s.id, s.dataset_id, s.run_id, s.s3_metadata_path, k.key, :source, :reason, 'purged',
       :now, :now, :now, :reason, s.snapshot
FROM bench_snapshot s
LEFT JOIN unnest(CAST(:key_ids AS integer[]), CAST(:keys AS text[])) AS k(id, key) ON k.id = s.id
WHERE s.id = ANY(CAST(:ids AS integer[])) AND NOT (s.id = ANY(CAST(:updated AS integer[])))
""")


def delete_annotations_server_side(
    conn: Connection,
    annotation_ids: Sequence[int],
    *,
    source: Source,
    reason: str,
    metadata_keys: Mapping[int, str | None] | None = None,
    now: datetime.datetime | None = None,
) -> list[int]:
    """The same rows deleted and the same ledger rows written as ``delete_annotations``; returns the ids deleted.

    (It does not hand the snapshots back to the caller, which ``delete_annotations`` does.)
    """
    ids = sorted(set(annotation_ids))
    if not ids:
        return []
    now = now or datetime.datetime.now(datetime.UTC)
    conn.execute(_SNAPSHOT_INTO_TEMP, {"ids": ids})
    deleted: list[int] = []
    for table, statement in deletion._DELETES:
        outcome = conn.execute(statement, {"ids": ids})
        if table == "annotation":
            deleted = sorted(outcome.scalars())
    if deleted:
        updated = list(conn.execute(_MARK_PURGED, {"ids": deleted, "now": now, "reason": reason}).scalars())
        keys = {k: v for k, v in (metadata_keys or {}).items() if v is not None}
        conn.execute(
            _INSERT_PURGED,
            {
                "ids": deleted,
                "updated": updated,
                "key_ids": list(keys),
                "keys": list(keys.values()),
                "source": source.value,
                "reason": reason,
                "now": now,
            },
        )
    conn.execute(text("DROP TABLE bench_snapshot"))
    return deleted


def tcp_nodelay(engine: Engine) -> Engine:
    """Set TCP_NODELAY on every new pg8000 connection of ``engine`` (a bench-only listener)."""

    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        sock = getattr(dbapi_connection, "_usock", None)
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    event.listen(engine, "connect", _on_connect)
    return engine
