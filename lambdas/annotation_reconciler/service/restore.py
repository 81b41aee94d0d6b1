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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from annotation_reconciler.ledger import audit, integrity
from annotation_reconciler.ledger.audit import Purged
from annotation_reconciler.portal import restoring
from annotation_reconciler.portal.restoring import TABLES
from annotation_reconciler.service.results import RestoreResult


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


def rows_by_table(purged: Sequence[Purged]) -> dict[str, list[dict[str, Any]]]:
    """The snapshots' rows, per portal table, in :data:`TABLES` order (pure)."""
    tables: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    for item in purged:
        tables["annotation"].append(item.snapshot["annotation"])
        for table in TABLES[1:]:
            tables[table].extend(item.snapshot.get(table) or [])
    return tables


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
        taken = restoring.taken_ids(conn, table, [int(r["id"]) for r in tables[table]])
        found += [f"{table} id {i} exists" for i in taken]
    found += [
        f"annotation {want}: annotation {have} has its natural key (run, deposition, annotation_ingest_id) now"
        for have, want in restoring.natural_key_clashes(conn, tables["annotation"])
        if have != want
    ]
    return found


def restore(
    conn: Connection, scope: RestoreScope, *, by: str, now: datetime.datetime, dry_run: bool = True
) -> RestoreResult:
    """Restore the purged annotations of ``scope`` in the caller's transaction (dry run: only check)."""
    integrity.require_clean(conn, "restore")
    purged = audit.purged_rows(conn, annotation_id=scope.annotation_id, dataset_id=scope.dataset_id, since=scope.since)
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
        restoring.insert_rows(conn, table, tables[table])
    audit.mark_restored(conn, purged, by=by, now=now)
    return result
