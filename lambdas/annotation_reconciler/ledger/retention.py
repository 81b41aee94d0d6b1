"""Closed ledger history is kept ``RECONCILER_LEDGER_RETENTION_DAYS`` (default 400), then pruned by the purge, a
bounded batch per table each time. Never pruned: an open row, an operator's release still in force (exempt), a
purged row an open resurrection names. One statement per table, in the caller's transaction."""

from __future__ import annotations

import datetime

from sqlalchemy import Connection, text

#: At most this many rows of each table per purge (the purge runs hourly: 240,000 a day).
PRUNE_BATCH = 10_000

_PRUNE = {
    "annotation_quarantine": """DELETE FROM annotation_reconciler.annotation_quarantine WHERE id IN (
            SELECT q.id FROM annotation_reconciler.annotation_quarantine q
            WHERE q.status IN ('released', 'purged', 'restored') AND NOT q.exempt
              AND COALESCE(q.restored_at, q.resolved_at) < :cutoff
              AND NOT EXISTS (SELECT 1 FROM annotation_reconciler.annotation_resurrection r
                              WHERE r.quarantine_id = q.id AND r.resolved_at IS NULL)
            ORDER BY q.id LIMIT :limit)""",
    "missing_annotation_file": """DELETE FROM annotation_reconciler.missing_annotation_file WHERE id IN (
            SELECT id FROM annotation_reconciler.missing_annotation_file
            WHERE resolved_at < :cutoff ORDER BY id LIMIT :limit)""",
    "annotation_resurrection": """DELETE FROM annotation_reconciler.annotation_resurrection WHERE id IN (
            SELECT id FROM annotation_reconciler.annotation_resurrection
            WHERE resolved_at < :cutoff ORDER BY id LIMIT :limit)""",
    "blind_prefix": """DELETE FROM annotation_reconciler.blind_prefix WHERE prefix IN (
            SELECT prefix FROM annotation_reconciler.blind_prefix
            WHERE resolved_at < :cutoff ORDER BY prefix LIMIT :limit)""",
}


def prune(
    conn: Connection, *, now: datetime.datetime, retention: datetime.timedelta, limit: int = PRUNE_BATCH
) -> dict[str, int]:
    """Delete closed history older than ``retention``; returns rows deleted per table (those with any)."""
    cutoff = now - retention
    pruned = {
        table: conn.execute(text(sql), {"cutoff": cutoff, "limit": limit}).rowcount for table, sql in _PRUNE.items()
    }
    return {table: n for table, n in pruned.items() if n}
