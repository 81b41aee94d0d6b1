"""Undo a purge: put purged annotations back, with every child row, from the deletion audit.

The audit (``annotation_reconciler_audit.deleted_annotation``) holds exactly the rows the deleting function
removed: the annotation, its shapes, files, authors and method links. It is written only by that function, and
the reconciler's roles may read it but never write it: ``restore`` reads nothing else, so a stolen runtime
password cannot make it insert a row it invented. :func:`restore` re-inserts the newest unrestored snapshot of each
annotation in scope with its original ids, in the caller's transaction (parents first), moves each table's id
sequence past them, and marks the audit rows (and the ledger's) restored, by whom, when. It refuses, naming every
clash, when a row with one of those ids, or an annotation with the same natural key (run, deposition, ingest id:
the importer's), exists now, and when two snapshots in scope share a natural key (restoring both would breed the
duplicates this project removes)::

    with engine.begin() as conn:
        result = restore(conn, RestoreScope(annotation_id=12), by="alice", now=utcnow(), dry_run=True)

Every name is schema-qualified and the session's ``search_path`` is ``pg_catalog, public``: the owner who runs
this resolves nothing in a schema a reconciler's role could ever write. A restored annotation is exempt from a new
quarantine (as an operator's release is) until its metadata is seen in S3 again or its stored path changes.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from annotation_reconciler.ledger import integrity

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
    """One audit row: ``quarantine_id`` is the audit row's id (the name is kept for the callers)."""

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
    """The newest unrestored audit row of each annotation in scope."""
    rows = conn.execute(
        text("""SELECT DISTINCT ON (annotation_id) id, annotation_id, dataset_id, deleted_at, snapshot
                FROM annotation_reconciler_audit.deleted_annotation
                WHERE restored_at IS NULL
                  AND (CAST(:aid AS integer) IS NULL OR annotation_id = :aid)
                  AND (CAST(:did AS integer) IS NULL OR dataset_id = :did)
                  AND (CAST(:since AS timestamptz) IS NULL OR deleted_at >= :since)
                ORDER BY annotation_id, id DESC"""),
        {"aid": scope.annotation_id, "did": scope.dataset_id, "since": scope.since},
    ).all()
    return [Purged(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def natural_key(annotation: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """The importer's natural key of an annotation row: (run, deposition, annotation_ingest_id)."""
    return (annotation.get("run_id"), annotation.get("deposition_id"), annotation.get("annotation_ingest_id"))


def shared_natural_keys(purged: Sequence[Purged]) -> list[str]:
    """Snapshots in one scope that share a natural key (pure): restoring both would make duplicates.

    >>> a = Purged(1, 10, 7, None, {"annotation": {"run_id": 3, "deposition_id": 4, "annotation_ingest_id": "x"}})
    >>> b = Purged(2, 11, 7, None, {"annotation": {"run_id": 3, "deposition_id": 4, "annotation_ingest_id": "x"}})
    >>> print(shared_natural_keys([a, b])[0].replace(": ", ":\\n"))
    annotations 10, 11 share the natural key (run 3, deposition 4, ingest id 'x'):
    restore one with --annotation-id (11 was purged last)
    """
    groups: dict[tuple[Any, Any, Any], list[Purged]] = {}
    for item in purged:
        groups.setdefault(natural_key(item.snapshot["annotation"]), []).append(item)
    found = []
    for (run, deposition, ingest_id), items in groups.items():
        if len(items) > 1:
            ids = ", ".join(str(i.annotation_id) for i in sorted(items, key=lambda i: i.annotation_id))
            last = max(items, key=lambda i: i.quarantine_id).annotation_id
            found.append(
                f"annotations {ids} share the natural key (run {run}, deposition {deposition}, ingest id "
                f"{ingest_id!r}): restore one with --annotation-id ({last} was purged last)"
            )
    return found


def conflicts(conn: Connection, tables: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every row that exists now with an id to restore, and every annotation with a natural key to restore."""
    found: list[str] = []
    for table in TABLES:
        ids = [int(r["id"]) for r in tables[table]]
        if ids:
            taken = conn.execute(
                text(f"SELECT id FROM public.{table} WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id"),  # noqa: S608
                {"ids": ids},
            ).scalars()
            found += [f"{table} id {i} exists" for i in taken]
    annotations = tables["annotation"]
    if annotations:
        clashes = conn.execute(
            text("""SELECT a.id, k.want FROM public.annotation a
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
        text(
            f"INSERT INTO public.{table} SELECT * "  # noqa: S608 (a table name of TABLES)
            f"FROM jsonb_populate_recordset(NULL::public.{table}, CAST(:rows AS jsonb))"
        ),
        {"rows": json.dumps(rows)},
    )
    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": f"public.{table}"}).scalar()
    if seq:  # explicit ids must not collide with later inserts: the sequence never moves back
        conn.execute(
            text(
                f"SELECT setval(:seq, GREATEST(m, (SELECT last_value FROM {seq}))) "  # noqa: S608
                f"FROM (SELECT max(id) AS m FROM public.{table}) x WHERE m IS NOT NULL"
            ),
            {"seq": seq},
        )
    return len(rows)


def restore(
    conn: Connection, scope: RestoreScope, *, by: str, now: datetime.datetime, dry_run: bool = True
) -> RestoreResult:
    """Restore the purged annotations of ``scope`` in the caller's transaction (dry run: only check)."""
    integrity.require_clean(conn, "restore")
    purged = purged_rows(conn, scope)
    if not purged:
        raise RestoreError(
            f"no purged annotation matches {scope.describe()}: see `annotation-reconciler status` for the ledger"
        )
    tables = rows_by_table(purged)
    problems = shared_natural_keys(purged) + conflicts(conn, tables)
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
    audit_ids = [p.quarantine_id for p in purged]
    annotation_ids = [p.annotation_id for p in purged]
    conn.execute(
        text("""UPDATE annotation_reconciler_audit.deleted_annotation SET restored_at = :now, restored_by = :by
                WHERE id = ANY(CAST(:ids AS bigint[]))"""),
        {"ids": audit_ids, "now": now, "by": by},
    )
    ledger_ids = (
        conn.execute(
            text("""UPDATE annotation_reconciler.annotation_quarantine
                SET status = 'restored', restored_at = :now, resolved_by = :by, exempt = true,
                    resolution = resolution || '; restored by ' || :by || ' at ' || CAST(:now AS text)
                WHERE status = 'purged' AND annotation_id = ANY(CAST(:ids AS integer[]))
                RETURNING id"""),
            {"ids": annotation_ids, "now": now, "by": by},
        )
        .scalars()
        .all()
    )
    conn.execute(
        text("""UPDATE annotation_reconciler.annotation_resurrection SET resolved_at = :now
                WHERE quarantine_id = ANY(CAST(:ids AS bigint[])) AND resolved_at IS NULL"""),
        {"ids": list(ledger_ids), "now": now},
    )
    return result
