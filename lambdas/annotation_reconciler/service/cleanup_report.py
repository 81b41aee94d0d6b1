"""What ``cleanup-stale-annotations`` found and did: the report model and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotation_reconciler.rules.lifecycle import AnnotationRef, Unknown
from annotation_reconciler.rules.scope import Scope


@dataclass(frozen=True, slots=True)
class Stale:
    """An annotation whose metadata a complete listing did not contain."""

    ref: AnnotationRef
    key: str
    held: bool  # stale but suspicious (its prefix listed no metadata at all, or the guard): needs an answer
    reason: str


@dataclass
class CleanupReport:
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
