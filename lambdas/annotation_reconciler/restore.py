"""Undo a purge: put purged annotations back, with every child row, from their ledger snapshots.

The snapshot of a purged ledger row holds exactly the rows the deletion removed (``portal/deletion.py``):
the annotation, its shapes, files, authors and method links. :func:`restore` re-inserts them with their
original ids in the caller's transaction (parents first), moves each table's id sequence past them,
and marks the ledger rows ``restored`` (by whom, when). It refuses, naming every clash, when a row with
one of those ids, or an annotation with the same natural key (run, deposition, ingest id: the
importer's), exists now::

    with engine.begin() as conn:
        result = restore(conn, RestoreScope(annotation_id=12), by="alice", now=utcnow(), dry_run=True)

A restored annotation is exempt from a new quarantine (as an operator's release is) until its
metadata is seen in S3 again or its stored path changes: restoring is an operator's decision.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

#: Parents first: the portal's foreign keys point from children to parents.
TABLES = ("annotation", "annotation_shape", "annotation_file", "annotation_author", "annotation_method_link")


class RestoreError(RuntimeError):
    """Nothing was restored; the message says why and what to do."""


@dataclass(frozen=True)
class RestoreScope:
    """One annotation, or a dataset's annotations purged since a time (both: AND)."""

    annotation_id: int | None = None
    dataset_id: int | None = None
    since: datetime.datetime | None = None

    def describe(self) -> str:
        parts = []
        if self.annotation_id is not None:
            parts.append(f"annotation {self.annotation_id}")
        if self.dataset_id is not None:
            parts.append(f"dataset {self.dataset_id}")
        if self.since is not None:
            parts.append(f"purged since {self.since.isoformat()}")
        return ", ".join(parts) or "everything"


@dataclass(frozen=True)
class Purged:
    quarantine_id: int
    annotation_id: int
    dataset_id: int | None
    purged_at: datetime.datetime | None
    snapshot: dict[str, Any]


@dataclass
class RestoreResult:
    dry_run: bool
    annotations: list[int] = field(default_factory=list)  # restored (or, in dry run, would be)
    rows: dict[str, int] = field(default_factory=dict)  # per table


def rows_by_table(purged: Sequence[Purged]) -> dict[str, list[dict[str, Any]]]:
    """The snapshots' rows, per portal table, in :data:`TABLES` order (pure)."""
    tables: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    for item in purged:
        tables["annotation"].append(item.snapshot["annotation"])
        for table in TABLES[1:]:
            tables[table].extend(item.snapshot.get(table) or [])
    return tables


def purged_rows(conn: Connection, scope: RestoreScope) -> list[Purged]:
    """The newest purged ledger row of each annotation in scope."""
    rows = conn.execute(
        text("""SELECT DISTINCT ON (annotation_id) id, annotation_id, dataset_id, resolved_at, snapshot
                FROM annotation_quarantine
                WHERE status = 'purged' AND snapshot IS NOT NULL
                  AND (CAST(:aid AS integer) IS NULL OR annotation_id = :aid)
                  AND (CAST(:did AS integer) IS NULL OR dataset_id = :did)
                  AND (CAST(:since AS timestamptz) IS NULL OR resolved_at >= :since)
                ORDER BY annotation_id, id DESC"""),
        {"aid": scope.annotation_id, "did": scope.dataset_id, "since": scope.since},
    ).all()
    return [Purged(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def conflicts(conn: Connection, tables: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every row that exists now with an id to restore, and every annotation with a natural key to restore."""
    found: list[str] = []
    for table in TABLES:
        ids = [int(r["id"]) for r in tables[table]]
        if ids:
            taken = conn.execute(
                text(f"SELECT id FROM {table} WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id"),  # noqa: S608
                {"ids": ids},
            ).scalars()
            found += [f"{table} id {i} exists" for i in taken]
    annotations = tables["annotation"]
    if annotations:
        clashes = conn.execute(
            text("""SELECT a.id, k.want FROM annotation a
                    JOIN unnest(CAST(:runs AS integer[]), CAST(:deps AS integer[]), CAST(:ingest AS text[]),
                                CAST(:want AS integer[])) AS k(run_id, deposition_id, ingest_id, want)
                      ON a.run_id IS NOT DISTINCT FROM k.run_id AND a.deposition_id IS NOT DISTINCT FROM k.deposition_id
                     AND a.annotation_ingest_id = k.ingest_id
                    ORDER BY k.want"""),
            {
                "runs": [a.get("run_id") for a in annotations],
                "deps": [a.get("deposition_id") for a in annotations],
                "ingest": [a.get("annotation_ingest_id") for a in annotations],
                "want": [int(a["id"]) for a in annotations],
            },
        ).all()
        found += [
            f"annotation {want}: annotation {have} has its natural key (run, deposition, annotation_ingest_id) now"
            for have, want in clashes
            if have != want
        ]
    return found


def _insert(conn: Connection, table: str, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    conn.execute(
        text(f"INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, CAST(:rows AS jsonb))"),  # noqa: S608
        {"rows": json.dumps(rows)},
    )
    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar()
    if seq:  # explicit ids must not collide with later inserts: the sequence never moves back
        conn.execute(
            text(
                f"SELECT setval(:seq, GREATEST(m, (SELECT last_value FROM {seq}))) "  # noqa: S608
                f"FROM (SELECT max(id) AS m FROM {table}) x WHERE m IS NOT NULL"
            ),
            {"seq": seq},
        )
    return len(rows)


def restore(
    conn: Connection, scope: RestoreScope, *, by: str, now: datetime.datetime, dry_run: bool = True
) -> RestoreResult:
    """Restore the purged annotations of ``scope`` in the caller's transaction (dry run: only check)."""
    purged = purged_rows(conn, scope)
    if not purged:
        raise RestoreError(
            f"no purged annotation matches {scope.describe()}: see `annotation-reconciler status` for the ledger"
        )
    tables = rows_by_table(purged)
    problems = conflicts(conn, tables)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise RestoreError(
            f"refusing to restore {scope.describe()}: {shown}. Nothing was restored; remove or re-key those rows, "
            "or narrow the scope (--annotation-id)"
        )
    result = RestoreResult(dry_run, sorted(p.annotation_id for p in purged), {t: len(r) for t, r in tables.items()})
    if dry_run:
        return result
    for table in TABLES:
        _insert(conn, table, tables[table])
    ids = [p.quarantine_id for p in purged]
    conn.execute(
        text("""UPDATE annotation_quarantine
                SET status = 'restored', restored_at = :now, resolved_by = :by, exempt = true,
                    resolution = resolution || '; restored by ' || :by || ' at ' || CAST(:now AS text)
                WHERE id = ANY(CAST(:ids AS bigint[]))"""),
        {"ids": ids, "now": now, "by": by},
    )
    conn.execute(
        text("""UPDATE annotation_resurrection SET resolved_at = :now
                WHERE quarantine_id = ANY(CAST(:ids AS bigint[])) AND resolved_at IS NULL"""),
        {"ids": ids, "now": now},
    )
    return result
