"""The service's facade: one :class:`Reconciler` whose methods each hand its :class:`Context` to the module of one
operation, which returns a result object (``results.py``).

Handlers and CLIs build a :class:`Reconciler` and call one method::

    reconciler = Reconciler(Context(engine, S3Storage(client, bucket), settings))
    result = reconciler.apply_changes(parsed.changes)        # S3 events -> quarantine / release (apply_changes.py)
    result = reconciler.scan_shard(Scope(dataset_id=10001))  # LIST, decide, quarantine / release (scan.py)
    result = reconciler.purge()                              # grace over -> re-check S3 -> delete (purge.py)
    reconciler.approve(10001, by="alice")                    # an operator's decision (operators.py)

A test that needs other parts replaces the context: ``reconciler.context = replace(reconciler.context, clock=c)``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Engine

from annotation_reconciler.ledger import exemptions
from annotation_reconciler.rules.notifications import ObjectChange
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service import apply_changes, cleanup, inventory, operators, purge, scan, survey
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.results import (
    ChangeResult,
    CleanupResult,
    InventoryResult,
    InventorySliceResult,
    PurgeResult,
    ScanResult,
    SurveyResult,
)
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage

__all__ = ["Reconciler"]


class Reconciler:
    """The reconciler's operations over one portal database and one bucket."""

    def __init__(self, context: Context) -> None:
        self.context = context

    # the parts, read from the context
    @property
    def engine(self) -> Engine:
        return self.context.engine

    @property
    def storage(self) -> S3Storage:
        return self.context.storage

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @property
    def layout(self) -> BucketLayout:
        return self.context.layout

    def clock(self) -> datetime.datetime:
        return self.context.clock()

    # the operations
    def apply_changes(self, changes: Sequence[ObjectChange], *, rollback: bool = False) -> ChangeResult:
        return apply_changes.apply_changes(self.context, changes, rollback=rollback)

    def survey(self, scope: Scope, **options: Any) -> SurveyResult:
        return survey.survey(self.context, scope, **options)

    def check_presence(self, keys: Iterable[str]) -> dict[str, bool | None]:
        return survey.check_presence(self.context, keys)

    def scan_shard(
        self,
        scope: Scope,
        *,
        remaining_seconds: Callable[[], float] | None = None,
        resume_after: str | None = None,
        only_prefixes: Sequence[str] | None = None,
    ) -> ScanResult:
        return scan.scan_shard(
            self.context,
            scope,
            remaining_seconds=remaining_seconds,
            resume_after=resume_after,
            only_prefixes=only_prefixes,
        )

    def purge(
        self,
        *,
        remaining_seconds: Callable[[], float] | None = None,
        max_batches: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> PurgeResult:
        return purge.purge(
            self.context, remaining_seconds=remaining_seconds, max_batches=max_batches, progress=progress
        )

    def plan_inventory(self, manifest_url: str, **options: Any) -> inventory.InventoryPlan:
        return inventory.plan_inventory(self.context, manifest_url, **options)

    def confirm_inventory_shard(
        self, shard: inventory.InventoryShard, *, remaining_seconds: Callable[[], float] | None = None
    ) -> InventorySliceResult:
        return inventory.confirm_shard(self.context, shard, remaining_seconds=remaining_seconds)

    def reconcile_inventory(self, manifest_url: str, **options: Any) -> InventoryResult:
        return inventory.reconcile_inventory(self.context, manifest_url, **options)

    def cleanup_survey(self, report: CleanupResult, max_fraction: float | None) -> None:
        cleanup.survey_scope(self.context, report, max_fraction)

    def cleanup_delete(self, report: CleanupResult, *, approved_by: str | None, max_fraction: float | None) -> None:
        cleanup.delete_stale_annotations(self.context, report, approved_by=approved_by, max_fraction=max_fraction)

    # the operator's decisions, on the reconciler's clock
    def approve(self, dataset_id: int, *, by: str = "operator") -> int:
        return operators.approve(self.engine, dataset_id, by=by, now=self.clock())

    def release(self, annotation_id: int, *, by: str = "operator") -> exemptions.Released:
        return operators.release(self.engine, annotation_id, by=by, now=self.clock())

    def clear_release(self, annotation_id: int, *, by: str = "operator") -> int:
        return operators.clear_release(self.engine, annotation_id, by=by, now=self.clock())
