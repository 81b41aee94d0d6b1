"""The LIST shard's message on the work queue: built in one place, read in one place.

>>> message = ShardMessage(Scope(dataset_id=10001))
>>> message.to_body()
{'type': 'scan_shard', 'dataset_id': 10001}
>>> later = message.continued("10001/TS_1/Reconstructions/VoxelSpacing1.000/Annotations/")
>>> ShardMessage.parse(later.to_body()) == later
True
>>> message.retry(["p/b/", "p/a/"], attempt=1).to_body()
{'type': 'scan_shard', 'dataset_id': 10001, 'prefixes': ['p/a/', 'p/b/'], 'attempt': 1}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from annotation_reconciler.rules.scope import Scope

SHARD_TYPE = "scan_shard"


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ShardMessage:
    """One shard of the full reconciliation: its scope, where a run cut short by its time budget resumes
    (``resume_after``), and, for a retry, the only prefixes to list and the retry's number (``attempt``; 0 is the
    first run)."""

    scope: Scope
    resume_after: str | None = None
    prefixes: tuple[str, ...] | None = None
    attempt: int = 0

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": SHARD_TYPE, "dataset_id": self.scope.dataset_id}
        if self.scope.run_ids is not None:
            body["run_ids"] = list(self.scope.run_ids)
        if self.resume_after is not None:
            body["resume_after"] = self.resume_after
        if self.prefixes is not None:
            body["prefixes"] = list(self.prefixes)
            body["attempt"] = self.attempt
        return body

    def continued(self, resume_after: str | None) -> ShardMessage:
        """The message that carries on after ``resume_after`` (the same prefixes and attempt, for a retry)."""
        return replace(self, resume_after=resume_after)

    def retry(self, prefixes: Sequence[str], attempt: int) -> ShardMessage:
        """The message that lists only ``prefixes`` of this shard again, as retry number ``attempt``."""
        return ShardMessage(self.scope, prefixes=tuple(sorted(set(prefixes))), attempt=attempt)

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> ShardMessage:
        """Read a shard message; raises ValueError naming what is wrong."""
        if body.get("type") != SHARD_TYPE:
            raise ValueError(f"not a shard message (type={body.get('type')!r}); expected type {SHARD_TYPE!r}")
        dataset_id = body.get("dataset_id")
        if not _whole(dataset_id):
            raise ValueError(f"shard message needs an integer dataset_id, got {dataset_id!r}")
        run_ids = body.get("run_ids")
        if run_ids is not None and (not isinstance(run_ids, list) or not all(_whole(r) for r in run_ids)):
            raise ValueError(f"shard message run_ids must be a list of integers, got {run_ids!r}")
        resume = body.get("resume_after")
        if resume is not None and not isinstance(resume, str):
            raise ValueError("shard message resume_after must be a string")
        attempt = body.get("attempt", 0)
        if not _whole(attempt) or attempt < 0:
            raise ValueError(f"shard message attempt must be a whole number >= 0, got {attempt!r}")
        prefixes = body.get("prefixes")
        if prefixes is not None and (
            not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) and p for p in prefixes)
        ):
            raise ValueError(f"shard message prefixes must be a non-empty list of prefixes, got {prefixes!r}")
        scope = Scope(dataset_id=dataset_id, run_ids=tuple(run_ids) if run_ids is not None else None)
        return cls(scope, resume, tuple(prefixes) if prefixes is not None else None, attempt)
