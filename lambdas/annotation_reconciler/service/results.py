"""What each operation of the reconciler returns: one result object per operation."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field

from annotation_reconciler.errors import StorageError
from annotation_reconciler.rules import lifecycle
from annotation_reconciler.rules.lifecycle import Candidate
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
    unknown: list[int] = field(default_factory=list)
    moved: list[tuple[int, str]] = field(default_factory=list)  # (annotation id, the key carrying its natural key)
    held_datasets: dict[int | None, tuple[int, int]] = field(default_factory=dict)
    rows_deleted: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # rows that could not be settled even alone: marked, waiting
    resurrections_closed: int = 0  # open resurrections whose annotation was ingested again
    pruned: dict[str, int] = field(default_factory=dict)  # closed history past the retention, per table
