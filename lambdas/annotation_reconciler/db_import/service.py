"""Ingest a dataset from S3 into the portal's tables, cleaning up stale annotations voxel spacing by voxel spacing.

One transaction per voxel spacing (its annotations, their children and the cleanup); S3 is read
before the transaction opens. A dry run does everything inside one transaction and rolls it back::

    storage = S3Storage(make_s3_client(), "cryoet-data-portal-public")
    result = ingest(engine, storage, BucketLayout("cryoet-data-portal-public"), dataset_id=10001)
    result.inserted["annotation"], result.removed["annotation"], result.skipped_scopes, result.ok
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from annotation_reconciler.db_import.base import FoundItem, ImportProblem, ImportResult, StoredPaths
from annotation_reconciler.db_import.importers import (
    AnnotationImporter,
    DatasetImporter,
    LegacyAnnotation,
    MissingParentError,
    RunImporter,
    VoxelSpacingImporter,
    ensure_depositions,
    import_annotation_children,
    legacy_annotations,
)
from annotation_reconciler.errors import LedgerMissingError
from annotation_reconciler.ledger import quarantines
from annotation_reconciler.rules.lifecycle import Verdict
from annotation_reconciler.rules.ordering import Clock, utcnow
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.service.deletions import Policy
from annotation_reconciler.storage import S3Storage

log = logging.getLogger(__name__)
T = TypeVar("T")
#: First key of the advisory lock that lets one ingestion of a dataset run at a time ("AREC").
LOCK_NAMESPACE = 0x41524543
_TRY_LOCK = text("SELECT pg_try_advisory_lock(CAST(:namespace AS integer), CAST(:id AS integer))")
_UNLOCK = text("SELECT pg_advisory_unlock(CAST(:namespace AS integer), CAST(:id AS integer))")


class IngestProgress(Protocol):
    """Progress in voxel spacings: the total grows as runs are listed."""

    def add_total(self, count: int) -> None: ...

    def advance(self, description: str) -> None: ...


class _Silent:
    def add_total(self, count: int) -> None:
        pass

    def advance(self, description: str) -> None:
        pass


@dataclass
class VoxelSpacingReport:
    """What the import of one voxel spacing found and did."""

    voxel_spacing_id: int
    prefix: str
    metadata_read: int = 0
    cleanup_done: bool = False
    cleanup_off: str | None = None  # why the sibling cleanup was not run (switched off, aliased folders)
    deleted: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)  # stale but suspicious: await `approve`
    left_in_place: list[tuple[int, str]] = field(default_factory=list)  # (annotation id, why it was not judged)
    problems: list[ImportProblem] = field(default_factory=list)


@dataclass
class IngestResult:
    """Counts per table, the voxel spacings imported, the legacy rows left alone, and every problem."""

    dataset_id: int
    dry_run: bool = False
    inserted: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    voxel_spacings: list[VoxelSpacingReport] = field(default_factory=list)
    legacy: list[LegacyAnnotation] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def deleted(self) -> list[int]:
        return sorted(i for report in self.voxel_spacings for i in report.deleted)

    @property
    def skipped_scopes(self) -> list[str]:
        """Voxel spacings whose stale annotations were left in place because S3 was not read completely."""
        return [report.prefix for report in self.voxel_spacings if not report.cleanup_done and not report.cleanup_off]

    def record(self, outcome: ImportResult) -> None:
        self.inserted[outcome.table] += outcome.inserted
        self.updated[outcome.table] += outcome.updated
        self.removed.update(outcome.removed)


def ingest(
    engine: Engine,
    storage: S3Storage,
    layout: BucketLayout,
    dataset_id: int,
    run_name: str | None = None,
    https_prefix: str | None = None,
    dry_run: bool = False,
    progress: IngestProgress | None = None,
    *,
    voxel_spacing: float | None = None,
    workers: int = 8,
    cleanup: bool = True,
    max_purge_fraction: float | None = 0.1,
    clock: Clock = utcnow,
) -> IngestResult:
    """Import ``dataset_id`` (one run, one voxel spacing if given) from S3; see the module docstring.

    Raises :class:`LedgerMissingError` when the reconciler's tables are missing; every S3 or
    database problem is in ``result.problems`` instead, and the scope it hit is left uncleaned.
    ``cleanup=False`` switches the sibling cleanup off; ``max_purge_fraction`` is the mass-deletion
    guard its deletions pass through (as the purge's do). ``clock`` stamps what the ledger records.
    """
    result = IngestResult(dataset_id, dry_run)
    paths = StoredPaths.of(layout, https_prefix)
    with engine.connect() as conn:
        if not conn.execute(
            text("SELECT to_regclass('annotation_reconciler.annotation_quarantine') IS NOT NULL")
        ).scalar_one():
            raise LedgerMissingError("the database has no annotation_quarantine: run `annotation-reconciler migrate`")
        # The portal's tables have no unique natural keys: two ingestions of one dataset at once could
        # both insert a row. A session lock keeps them apart; the second one reports and stops.
        lock = {"namespace": LOCK_NAMESPACE, "id": dataset_id}
        locked = conn.execute(_TRY_LOCK, lock).scalar_one()
        conn.commit()
        if not locked:
            result.problems.append(ImportProblem(f"dataset {dataset_id}", "another ingestion of it is running"))
            return result
        run = _Ingestion(conn, storage, paths, result, progress or _Silent(), dry_run, workers, clock)
        run.policy = Policy(max_purge_fraction) if cleanup else None
        try:
            run.dataset(dataset_id, run_name, voxel_spacing)
        finally:
            run.finish()
            with contextlib.suppress(SQLAlchemyError):  # a lost connection has released its locks already
                conn.execute(_UNLOCK, lock)
                conn.commit()
    return result


class _Ingestion:
    def __init__(
        self,
        conn: Connection,
        storage: S3Storage,
        paths: StoredPaths,
        result: IngestResult,
        progress: IngestProgress,
        dry_run: bool,
        workers: int,
        clock: Clock = utcnow,
    ) -> None:
        self.conn, self.storage, self.paths, self.result = conn, storage, paths, result
        self.progress, self.dry_run, self.workers, self.clock = progress, dry_run, workers, clock
        self.outer = conn.begin() if dry_run else None
        self.policy: Policy | None = Policy(0.1)
        self.dataset_deposition_id: int | None = None  # the dataset's, for annotation_file.source

    def finish(self) -> None:
        if self.outer is not None:
            self.outer.rollback()

    def unit(self, scope: str, work: Callable[[Connection], T]) -> T | ImportProblem:
        """Run ``work`` in its own transaction (a savepoint in a dry run); a database error is a problem."""
        try:
            with self.conn.begin_nested() if self.dry_run else self.conn.begin():
                return work(self.conn)
        except MissingParentError as exc:
            self.result.problems.append(exc.problem)
            return exc.problem
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
            problem = ImportProblem(scope, f"database error, nothing of this scope was written: {reason}")
            self.result.problems.append(problem)
            return problem

    def dataset(self, dataset_id: int, run_name: str | None, voxel_spacing: float | None) -> None:
        dataset = DatasetImporter(self.storage, self.paths, dataset_id)
        runs = RunImporter(self.storage, self.paths, dataset_id, run_name)
        found, runs_found = dataset.find(), runs.find()

        def work(conn: Connection) -> tuple[ImportResult, ImportResult | None]:
            ensure_depositions(conn, _deposition_ids(found.items), dataset.scope)
            dataset_outcome = dataset.import_items(conn, found)
            if not dataset_outcome.imported:
                return dataset_outcome, None
            return dataset_outcome, runs.import_items(conn, runs_found)

        done = self.unit(dataset.scope, work)
        if isinstance(done, ImportProblem):
            return
        dataset_outcome, run_outcome = done
        self.result.record(dataset_outcome)
        self.result.problems += dataset_outcome.problems
        if run_outcome is None:
            return
        self.result.record(run_outcome)
        self.result.problems += run_outcome.problems
        [(_, dataset_row)] = dataset_outcome.imported
        self.dataset_deposition_id = dataset_row["deposition_id"]
        for item, row in run_outcome.imported:
            self.run(int(row["id"]), item.context["prefix"], voxel_spacing, bool(item.context.get("aliased")))

    def run(self, run_id: int, prefix: str, voxel_spacing: float | None, aliased: bool = False) -> None:
        """Import a run's voxel spacings. A run folder with a twin (``aliased``) imports no annotation: its rows
        keep their stored paths until the stray folder is gone."""
        spacings = VoxelSpacingImporter(self.storage, self.paths, run_id, prefix, voxel_spacing)
        found = spacings.find()
        done = self.unit(spacings.scope, lambda conn: spacings.import_items(conn, found))
        if isinstance(done, ImportProblem):
            return
        self.result.record(done)
        self.result.problems += done.problems
        self.progress.add_total(len(done.imported))
        for item, row in done.imported:
            aliased_here = aliased or bool(item.context.get("aliased"))
            twin = aliased or bool(item.context.get("twin"))
            self.voxel_spacing(run_id, int(row["id"]), item.context["prefix"], aliased_here, twin)
            self.progress.advance(item.context["prefix"])
        legacy = self.unit(f"run {prefix}", lambda conn: legacy_annotations(conn, run_id))
        if not isinstance(legacy, ImportProblem):
            self.result.legacy += legacy

    def voxel_spacing(
        self, run_id: int, voxel_spacing_id: int, prefix: str, aliased: bool = False, twin: bool = False
    ) -> None:
        """Import one voxel spacing's annotations. ``aliased``: a folder of the run has a twin, so nothing is
        cleaned up; ``twin``: this voxel spacing's own folder (or its run's) has one, so nothing is imported
        either: its metadata may be the stray copy, and a row re-pointed to it would be lost with it."""
        if twin:
            skipped = "aliased folders: nothing imported from this voxel spacing"
            self.result.voxel_spacings.append(VoxelSpacingReport(voxel_spacing_id, prefix, cleanup_off=skipped))
            log.info("%s: %s", prefix, skipped)
            return
        off = "switched off" if self.policy is None else "aliased folders in the run" if aliased else None
        annotations = AnnotationImporter(
            self.storage,
            self.paths,
            run_id=run_id,
            voxel_spacing_id=voxel_spacing_id,
            voxel_spacing_prefix=prefix,
            workers=self.workers,
            policy=None if off else self.policy,
            clock=self.clock,
            dataset_deposition_id=self.dataset_deposition_id,
        )
        found = annotations.find()
        report = VoxelSpacingReport(voxel_spacing_id, prefix, metadata_read=len(found.items), cleanup_off=off)
        self.result.voxel_spacings.append(report)

        def work(conn: Connection) -> list[ImportResult]:
            ensure_depositions(conn, _deposition_ids(found.items), annotations.scope)
            outcome = annotations.import_items(conn, found)
            # What the importer has just read from S3 is not stale, whatever the ledger says.
            quarantines.release(conn, outcome.ids, now=self.clock(), resolution="metadata read from S3 by the importer")
            children = import_annotation_children(
                conn, self.paths, outcome, annotations.scope, voxel_spacing_id, annotations.facts
            )
            annotations.cleanup_unused_items(conn, outcome)
            return [outcome, *children]

        done = self.unit(annotations.scope, work)
        if isinstance(done, ImportProblem):
            report.problems.append(done)
            return
        outcomes = done
        for outcome in outcomes:
            self.result.record(outcome)
            report.problems += outcome.problems
        self.result.problems += report.problems
        annotation_outcome = outcomes[0]
        report.cleanup_done = off is None and annotation_outcome.cleanup_allowed
        report.deleted = sorted(annotation_outcome.deleted_ids)
        if annotations.deletion is not None:
            report.held = annotations.deletion.held
            report.left_in_place = [(u.ref.id, u.why) for u in annotations.deletion.unknown]
            report.left_in_place += [
                (d.candidate.annotation_id, f"{d.reason}: a duplicate of a row the import updated")
                for d in annotations.deletion.decisions.of(Verdict.RELEASE)
            ]
            report.left_in_place.sort()
        if annotation_outcome.deleted_ids:
            log.info("%s: removed stale annotations %s", annotations.scope, ids_text(report.deleted))
        if off:
            log.info("%s: sibling cleanup not run (%s)", annotations.scope, off)
        elif not report.cleanup_done:
            log.info("%s: cleanup skipped, S3 was not read completely", annotations.scope)


def ids_text(ids: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _deposition_ids(found: list[FoundItem]) -> set[int]:
    ids = (item.data.get("deposition_id") for item in found)
    return {i for i in ids if isinstance(i, int) and not isinstance(i, bool)}
