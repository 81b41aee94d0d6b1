"""service/restore.py's pure parts: what a scope says of itself in a refusal, and which snapshots would make
duplicates if restored together (issue 16)."""

from __future__ import annotations

import datetime

import pytest

from annotation_reconciler.ledger.audit import Purged
from annotation_reconciler.service.restore import RestoreScope, shared_natural_keys

SINCE = datetime.datetime(2026, 12, 1, 8, 30, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("scope", "said"),
    [
        (RestoreScope(), "everything"),
        (RestoreScope(annotation_id=7), "annotation 7"),
        (RestoreScope(dataset_id=10001), "dataset 10001"),
        (RestoreScope(since=SINCE), "purged since 2026-12-01T08:30:00+00:00"),
        (
            RestoreScope(annotation_id=7, dataset_id=10001, since=SINCE),
            "annotation 7, dataset 10001, purged since 2026-12-01T08:30:00+00:00",
        ),
        (RestoreScope(annotation_id=0, dataset_id=0), "annotation 0, dataset 0"),
    ],
)
def test_a_scope_describes_each_of_its_conditions(scope: RestoreScope, said: str) -> None:
    assert scope.describe() == said


def _purged(annotation_id: int, quarantine_id: int, run_id: int, ingest_id: str = "x") -> Purged:
    row = {"run_id": run_id, "deposition_id": 4, "annotation_ingest_id": ingest_id}
    return Purged(quarantine_id, annotation_id, 7, None, {"annotation": row})


def test_snapshots_share_a_natural_key_only_with_the_same_run_deposition_and_ingest_id() -> None:
    assert shared_natural_keys([_purged(10, 1, run_id=3), _purged(11, 2, run_id=5)]) == []
    assert shared_natural_keys([_purged(10, 1, run_id=3), _purged(11, 2, run_id=3, ingest_id="y")]) == []
    assert shared_natural_keys([_purged(11, 2, run_id=3), _purged(10, 5, run_id=3)]) == [
        "annotations 10, 11 share the natural key (run 3, deposition 4, ingest id 'x'): restore one with "
        "--annotation-id (10 was purged last)"
    ]
