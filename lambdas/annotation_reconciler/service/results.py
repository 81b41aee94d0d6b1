"""What each operation of the service returns: one ``…Result`` per operation, all here (the adapters return their
own rows: ``portal.deletion.DeletedRows``, ``ledger.status.StatusReport``)."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from annotation_reconciler.errors import StorageError
from annotation_reconciler.rules import lifecycle
from annotation_reconciler.rules.lifecycle import AnnotationRef, Candidate, Unknown, Verdict
from annotation_reconciler.rules.listings import Listings
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.evidence import Surroundings


@dataclass
class ChangeResult:
    """What a batch of object changes did."""

    seen: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    unmatched_keys: list[str] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    missing_files: int = 0
    restored_files: int = 0
    resurrected: list[tuple[int, str]] = field(default_factory=list)  # purged annotations whose key is back
    out_of_order: int = 0  # events older than what the annotation's ledger row has seen: nothing done


@dataclass
class SurveyResult:
    """The verdict on a scope's annotations after listing their prefixes."""

    scope: Scope
    annotations: int = 0
    prefixes_listed: int = 0
    candidates: list[Candidate] = field(default_factory=list)  # the rows judged (those of the listed window)
    listings: dict[str, frozenset[str] | BaseException] = field(default_factory=dict)
    decisions: lifecycle.Decisions = field(default_factory=lifecycle.Decisions)
    purged_keys: list[str] = field(default_factory=list)  # keys of recently purged annotations, looked for too
    errors: list[StorageError] = field(default_factory=list)
    over_page_limit: list[str] = field(default_factory=list)  # prefixes beyond RECONCILER_SCAN_PAGE_LIMIT
    neighbours: Surroundings = field(default_factory=Surroundings)
    resume_after: str | None = None
    listed_at: dict[str, datetime.datetime] = field(default_factory=dict)  # no listing of the prefix started before
    #: complete listing's prefix -> the metadata keys in it that no annotation row points to
    untracked: dict[str, list[str]] = field(default_factory=dict)

    @property
    def found_again(self) -> list[str]:
        """Keys of recently purged annotations that the listings hold, in any spelling."""
        listings = Listings.of(self.listings)
        return [k for k in self.purged_keys if listings.presence(k).listed_as is not None]


@dataclass
class ScanResult:
    """What a full reconciliation of one shard found and did."""

    scope: Scope
    annotations: int = 0
    prefixes_listed: int = 0
    present: int = 0
    stale: int = 0  # annotations whose metadata key the listings show absent
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    unknown: list[lifecycle.Unknown] = field(default_factory=list)
    resurrected: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    over_page_limit: list[str] = field(default_factory=list)  # unknown: more LIST pages than the limit
    missing_files: int = 0  # data files newly recorded missing (complete listings only)
    restored_files: int = 0
    failed_prefixes: dict[str, str] = field(default_factory=dict)  # prefix -> the S3 error that kept it unlisted
    listed_prefixes: list[str] = field(default_factory=list)  # listed completely
    resume_after: str | None = None  # set when the time budget ran out: the next run starts after it
    untracked: list[str] = field(default_factory=list)  # metadata keys listed that no annotation row points to
    moved: list[tuple[int, str]] = field(default_factory=list)  # (annotation id, the key carrying its natural key)

    @property
    def complete(self) -> bool:
        return self.resume_after is None


@dataclass
class PurgeResult:
    """What one purge did (or, in dry run, would have done)."""

    dry_run: bool
    claimed: int = 0
    deleted: list[int] = field(default_factory=list)
    would_delete: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    unknown: list[lifecycle.Unknown] = field(default_factory=list)
    moved: list[tuple[int, str]] = field(default_factory=list)  # (annotation id, the key carrying its natural key)
    held_datasets: dict[int | None, tuple[int, int]] = field(default_factory=dict)
    rows_deleted: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # rows that could not be settled even alone: marked, waiting
    resurrections_closed: int = 0  # open resurrections whose annotation was ingested again
    pruned: dict[str, int] = field(default_factory=dict)  # closed history past the retention, per table


@dataclass
class DeletionResult:
    """What the flow did with its candidates (in dry run, ``would_delete`` instead of ``deleted``)."""

    decisions: lifecycle.Decisions = field(default_factory=lifecycle.Decisions)
    deleted: list[int] = field(default_factory=list)
    would_delete: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    rows_deleted: Counter[str] = field(default_factory=Counter)

    @property
    def unknown(self) -> list[Unknown]:
        """The rows S3 or the configuration could not judge: left in place (their decisions: ``decisions``)."""
        return [d.as_unknown() for d in self.decisions.of(Verdict.UNKNOWN)]

    @property
    def moved(self) -> list[tuple[int, str]]:
        """(annotation id, the key that carries its natural key) of the rows found moved."""
        return [(d.candidate.annotation_id, d.moved_to or "") for d in self.decisions.of(Verdict.MOVED)]

    @property
    def held_datasets(self) -> dict[int | None, tuple[int, int]]:
        return self.decisions.held_datasets


@dataclass(frozen=True, slots=True)
class Stale:
    """An annotation whose metadata a complete listing did not contain."""

    ref: AnnotationRef
    key: str
    held: bool  # stale but suspicious (its prefix listed no metadata at all, or the guard): needs an answer
    reason: str


@dataclass
class CleanupResult:
    """What the command found, and (without dry run) what it deleted."""

    bucket: str
    s3_prefix: str
    scope: Scope
    dry_run: bool
    dry_run_decided_by: str = "--dry-run"  # the flag, RECONCILER_DRY_RUN=…, or the default
    annotations: int = 0
    prefixes_listed: int = 0
    stale: list[Stale] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)
    released: list[int] = field(default_factory=list)  # stale at the survey, present at the re-check
    deleted: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)  # held at the deletion, not approved: recorded as held, not deleted
    rows_deleted: dict[str, int] = field(default_factory=dict)
    s3_requests: dict[str, int] = field(default_factory=dict)

    @property
    def stale_held(self) -> list[Stale]:
        """The stale rows the survey found suspicious (held unless an operator approves)."""
        return [s for s in self.stale if s.held]

    @property
    def present(self) -> int:
        """Annotations whose metadata the survey found."""
        return self.annotations - len(self.stale) - len(self.unknown)

    def first_reason(self) -> str:
        """Why the first row that is not present is not: an unknown one's reason first, else a stale one's."""
        if self.unknown:
            return f"annotation {self.unknown[0].ref.id}: {self.unknown[0].why}"
        if self.stale:
            return f"annotation {self.stale[0].ref.id}: {self.stale[0].reason}"
        return "no metadata listed"

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "s3_prefix": self.s3_prefix,
            "scope": self.scope.describe(),
            "dry_run": self.dry_run,
            "dry_run_decided_by": self.dry_run_decided_by,
            "annotations_checked": self.annotations,
            "prefixes_listed": self.prefixes_listed,
            "s3_requests": self.s3_requests,
            "stale": [
                {
                    "annotation_id": s.ref.id,
                    "run_id": s.ref.run_id,
                    "dataset_id": s.ref.dataset_id,
                    "s3_metadata_path": s.ref.stored_path,
                    "key": s.key,
                    "held": s.held,
                    "reason": s.reason,
                }
                for s in self.stale
            ],
            "unknown": [
                {"annotation_id": u.ref.id, "run_id": u.ref.run_id, "s3_metadata_path": u.ref.stored_path, "why": u.why}
                for u in self.unknown
            ],
            "released": self.released,
            "deleted": self.deleted,
            "held": self.held,
            "rows_deleted": self.rows_deleted,
        }


@dataclass
class InventorySliceResult:
    """What confirming (part of) one slice did."""

    checked: int = 0
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    unknown: list[lifecycle.Unknown] = field(default_factory=list)  # S3 could not say (each with its key): nothing done
    skipped: list[int] = field(default_factory=list)  # gone from the database or pointing elsewhere since the plan
    remaining: list[tuple[int, str]] = field(default_factory=list)  # not reached within the time budget


@dataclass
class InventoryResult:
    """A whole reconciliation from one report, confirmed inline (``annotation-reconciler scan --inventory``)."""

    manifest: str
    report_time: datetime.datetime
    annotations: int = 0
    inventory_metadata_keys: int = 0
    candidates: int = 0  # rows whose metadata the report lacks
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    unknown: list[lifecycle.Unknown] = field(default_factory=list)  # unmappable, or S3 could not say
    untracked: list[str] = field(default_factory=list)  # metadata keys in the report that no row points to


@dataclass
class RestoreResult:
    dry_run: bool
    annotations: list[int] = field(default_factory=list)  # restored (or, in dry run, would be)
    rows: dict[str, int] = field(default_factory=dict)  # per table
