"""The fan-out of the full reconciliation: shards of the portal, and the work-queue messages that carry them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, text

from annotation_reconciler.scope import Scope


def plan_shards(engine: Engine, *, max_annotations: int = 5000) -> list[Scope]:
    """One shard per dataset, split into groups of runs when a dataset is larger than ``max_annotations``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT r.dataset_id, a.run_id, count(*) FROM annotation a JOIN run r ON r.id = a.run_id
                    GROUP BY r.dataset_id, a.run_id ORDER BY r.dataset_id, a.run_id""")
        ).all()
    per_dataset: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for dataset_id, run_id, count in rows:
        per_dataset[dataset_id].append((run_id, count))
    shards: list[Scope] = []
    for dataset_id, runs in per_dataset.items():
        if sum(c for _, c in runs) <= max_annotations:
            shards.append(Scope(dataset_id=dataset_id))
            continue
        group: list[int] = []
        size = 0
        for run_id, count in runs:
            if group and size + count > max_annotations:
                shards.append(Scope(dataset_id=dataset_id, run_ids=tuple(group)))
                group, size = [], 0
            group.append(run_id)
            size += count
        shards.append(Scope(dataset_id=dataset_id, run_ids=tuple(group)))
    return shards


def shard_message(scope: Scope, resume_after: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "scan_shard", "dataset_id": scope.dataset_id}
    if scope.run_ids is not None:
        body["run_ids"] = list(scope.run_ids)
    if resume_after is not None:
        body["resume_after"] = resume_after
    return body


def scope_from_message(body: Mapping[str, Any]) -> tuple[Scope, str | None]:
    """Read a shard message; raises ValueError naming what is wrong."""
    if body.get("type") != "scan_shard":
        raise ValueError(f"not a shard message (type={body.get('type')!r}); expected type 'scan_shard'")
    dataset_id = body.get("dataset_id")
    if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
        raise ValueError(f"shard message needs an integer dataset_id, got {dataset_id!r}")
    run_ids = body.get("run_ids")
    if run_ids is not None and (
        not isinstance(run_ids, list) or not all(isinstance(r, int) and not isinstance(r, bool) for r in run_ids)
    ):
        raise ValueError(f"shard message run_ids must be a list of integers, got {run_ids!r}")
    resume = body.get("resume_after")
    if resume is not None and not isinstance(resume, str):
        raise ValueError("shard message resume_after must be a string")
    return Scope(dataset_id=dataset_id, run_ids=tuple(run_ids) if run_ids is not None else None), resume
