"""The deletion audit as ``restore`` reads and closes it: the newest unrestored snapshot of each purged annotation,
and the marks a restore leaves (on the audit row, the ledger row and its open resurrection)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Purged:
    """One audit row: ``quarantine_id`` is the audit row's id (the name is kept for the callers)."""

    quarantine_id: int
    annotation_id: int
    dataset_id: int | None
    purged_at: datetime.datetime | None
    snapshot: dict[str, Any]


def purged_rows(
    conn: Connection,
    *,
    annotation_id: int | None = None,
    dataset_id: int | None = None,
    since: datetime.datetime | None = None,
) -> list[Purged]:
    """The newest unrestored audit row of each annotation that matches (every filter given: AND)."""
    rows = conn.execute(
        text("""SELECT DISTINCT ON (annotation_id) id, annotation_id, dataset_id, deleted_at, snapshot
                FROM annotation_reconciler_audit.deleted_annotation
                WHERE restored_at IS NULL
                  AND (CAST(:aid AS integer) IS NULL OR annotation_id = :aid)
                  AND (CAST(:did AS integer) IS NULL OR dataset_id = :did)
                  AND (CAST(:since AS timestamptz) IS NULL OR deleted_at >= :since)
                ORDER BY annotation_id, id DESC"""),
        {"aid": annotation_id, "did": dataset_id, "since": since},
    ).all()
    return [Purged(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def mark_restored(conn: Connection, purged: Sequence[Purged], *, by: str, now: datetime.datetime) -> None:
    """The audit rows say who restored them and when; the annotations' purged ledger rows become ``restored``
    (exempt from a new quarantine) and their open resurrections close."""
    conn.execute(
        text("""UPDATE annotation_reconciler_audit.deleted_annotation SET restored_at = :now, restored_by = :by
                WHERE id = ANY(CAST(:ids AS bigint[]))"""),
        {"ids": [p.quarantine_id for p in purged], "now": now, "by": by},
    )
    ledger_ids = (
        conn.execute(
            text("""UPDATE annotation_reconciler.annotation_quarantine
                SET status = 'restored', restored_at = :now, resolved_by = :by, exempt = true,
                    resolution = resolution || '; restored by ' || :by || ' at ' || CAST(:now AS text)
                WHERE status = 'purged' AND annotation_id = ANY(CAST(:ids AS integer[]))
                RETURNING id"""),
            {"ids": [p.annotation_id for p in purged], "now": now, "by": by},
        )
        .scalars()
        .all()
    )
    conn.execute(
        text("""UPDATE annotation_reconciler.annotation_resurrection SET resolved_at = :now
                WHERE quarantine_id = ANY(CAST(:ids AS bigint[])) AND resolved_at IS NULL"""),
        {"ids": list(ledger_ids), "now": now},
    )
