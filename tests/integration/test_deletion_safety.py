"""Deletion safety, round 3 (issue 25), each rule with the test that tries to break it, on the real PostgreSQL
and moto: the guard counts the dataset, not the verdicts; a failed operator command changes nothing."""

from __future__ import annotations

import boto3
import pytest

from annotation_reconciler.lifecycle import metadata_folder
from support.faults import inject_at, record_backoff
from support.world import World, removed

# --- the guard counts the dataset, not the verdicts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("gone_runs", "throttled_runs"),
    [
        pytest.param(("TS_000", "TS_001", "TS_002"), ("TS_001", "TS_002"), id="dataset-vanished-2-of-3-throttled"),
        pytest.param(("TS_000", "TS_001"), ("TS_001",), id="two-runs-gone-1-throttled"),
        pytest.param(("TS_000", "TS_001", "TS_002"), ("TS_000",), id="dataset-vanished-1-of-3-throttled"),
    ],
)
def test_rows_s3_could_not_judge_still_count_for_the_guard(
    world: World, monkeypatch: pytest.MonkeyPatch, gone_runs: tuple[str, ...], throttled_runs: tuple[str, ...]
) -> None:
    """Runs of dataset 10001 vanish (every object); their annotations are quarantined. At the purge some of their
    prefixes answer SlowDown: those rows are unknown, but they still count as going, so the guard sees the whole
    loss (more than half of the dataset) and holds the rows it could prove absent instead of deleting them."""
    record_backoff(monkeypatch)
    gone = [a for a in world.portal.annotations if a.dataset_id == 10001 and a.run_name in gone_runs]
    world.delete(*[k for k in world.portal.all_keys() if k.split("/")[1] in gone_runs and k.startswith("10001/")])
    reconciler = world.reconciler()
    assert sorted(reconciler.apply_changes(removed(*[a.metadata_key for a in gone])).quarantined) == sorted(
        world.ids[a.metadata_key] for a in gone
    )
    world.clock.advance(hours=2)
    client = boto3.client("s3", region_name="us-west-2")
    throttled = {metadata_folder(a.metadata_key) for a in gone if a.run_name in throttled_runs}
    inject_at(client, "ListObjectsV2", *throttled, status=503, code="SlowDown")
    result = world.reconciler(s3=client, RECONCILER_MAX_PURGE_FRACTION="0.5").purge()
    ids = {world.ids[a.metadata_key] for a in gone}
    assert result.deleted == [] and ids <= world.annotation_ids()
    assert len(result.unknown) == 4 * len(throttled_runs)
    assert len(result.held) == 4 * (len(gone_runs) - len(throttled_runs))
    assert result.held_datasets == {10001: (len(ids), 12)}
