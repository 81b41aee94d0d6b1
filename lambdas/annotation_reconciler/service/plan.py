"""The fan-out of the full reconciliation: the portal in shards (``fanout.ShardMessage`` carries each)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Engine

from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules.scope import Scope


def plan_shards(engine: Engine, *, max_annotations: int = 5000) -> list[Scope]:
    """One shard per dataset, split into groups of runs when a dataset is larger than ``max_annotations``."""
    with engine.connect() as conn:
        rows = annotation_rows.annotations_per_run(conn)
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
