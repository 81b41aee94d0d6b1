"""The scan of a shard (``Reconciler.scan_shard``): it quarantines what is missing and releases what is back,
quarantines nothing on S3 errors or on a path it cannot map, stops on its time budget and resumes, and a
shard of some runs judges only their annotations. Real PostgreSQL, moto S3."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber
from sqlalchemy import text

from annotation_reconciler.errors import StorageError
from annotation_reconciler.rules.scope import Scope
from support.world import BUCKET, World, removed


def test_scan_quarantines_missing_releases_found_and_quarantines_emptied_prefixes(world: World) -> None:
    lost = world.portal.annotations[0]  # its deletion event was lost
    world.delete(lost.metadata_key)
    emptied = [a.metadata_key for a in world.portal.annotations if a.run_name == "TS_001" and a.dataset_id == 10002]
    world.delete(*emptied)  # a voxel spacing emptied of metadata: the run still holds its other objects
    gone = [a.metadata_key for a in world.portal.annotations if a.run_name == "TS_002" and a.dataset_id == 10002]
    world.delete(*[k for k in world.portal.all_keys() if k.startswith("10002/TS_002/")])  # a whole run removed
    back = world.portal.annotations[5]
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(back.metadata_key))  # quarantined, but the object is there
    world.clock.advance(seconds=1)  # the scan lists after the event (a listing proves nothing about later events)
    results = [reconciler.scan_shard(Scope(dataset_id=d)) for d in (10001, 10002)]
    assert results[0].quarantined == [world.ids[lost.metadata_key]]
    assert results[0].released == [world.ids[back.metadata_key]]
    # ordinary while the dataset folder holds other objects (the purge's guard still counts them)
    assert results[1].quarantined == sorted(world.ids[k] for k in emptied + gone) and results[1].held == []
    assert results[0].prefixes_listed == 3 and results[1].prefixes_listed == 3
    statuses = world.ledger()
    assert statuses[world.ids[lost.metadata_key]] == "quarantined"
    assert {statuses[world.ids[k]] for k in emptied + gone} == {"quarantined"}


def test_scan_with_s3_errors_quarantines_nothing(world: World) -> None:
    world.delete(world.portal.metadata_keys[0])
    import boto3

    failing = boto3.client("s3", region_name="us-west-2")
    with Stubber(failing) as stub:
        for _ in range(3):
            stub.add_client_error("list_objects_v2", service_error_code="InternalError", http_status_code=500)
        result = world.reconciler(s3=failing).scan_shard(Scope(dataset_id=10001))
    assert result.quarantined == [] and len(result.errors) == 3 and len(result.unknown) == 12
    assert world.ledger() == {}


def test_scan_stops_on_time_budget_and_resumes(world: World) -> None:
    key = world.portal.annotations[-1].metadata_key  # in the last prefix of dataset 10002
    world.delete(key)
    reconciler = world.reconciler()
    budget = iter([100.0, 100.0, 1.0])
    first = reconciler.scan_shard(Scope(dataset_id=10002), remaining_seconds=lambda: next(budget, 1.0))
    assert not first.complete and first.prefixes_listed == 2 and first.quarantined == []
    second = reconciler.scan_shard(Scope(dataset_id=10002), resume_after=first.resume_after)
    assert second.complete and second.prefixes_listed == 1
    assert second.quarantined == [world.ids[key]]


def test_a_scan_out_of_time_before_its_first_listing_resumes_from_the_start(world: World) -> None:
    """No listing started: the continuation point is before every prefix (the empty string), so the next run
    lists them all and judges the missing key."""
    key = world.portal.annotations[-1].metadata_key
    world.delete(key)
    reconciler = world.reconciler()
    first = reconciler.scan_shard(Scope(dataset_id=10002), remaining_seconds=lambda: 1.0)
    assert (first.complete, first.prefixes_listed, first.resume_after, first.quarantined) == (False, 0, "", [])
    second = reconciler.scan_shard(Scope(dataset_id=10002), resume_after=first.resume_after)
    assert second.complete and second.prefixes_listed == 3 and second.quarantined == [world.ids[key]]


def test_unmappable_paths_are_never_quarantined(world: World) -> None:
    victim = world.ids[world.portal.metadata_keys[0]]
    with world.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE annotation SET s3_metadata_path = 's3://another-bucket/10001/x/Annotations/1/a-1.json'"
                " WHERE id = :id"
            ),
            {"id": victim},
        )
    result = world.reconciler().scan_shard(Scope(dataset_id=10001))
    assert [u.ref.id for u in result.unknown] == [victim]
    assert victim not in world.ledger()


def test_a_shard_of_some_runs_reads_and_judges_only_their_annotations(world: World) -> None:
    """A large dataset is scanned in groups of runs (``Scope.run_ids``, from plan_shards): the shard reads, lists
    and judges only its runs' annotations; a missing key of another run of the dataset waits for that run's shard."""
    dataset = world.portal.dataset_ids[0]
    with world.engine.connect() as conn:
        run_id = dict(conn.execute(text("SELECT name, id FROM run WHERE dataset_id = :d"), {"d": dataset}).all())
    ours = [a for a in world.portal.annotations if a.dataset_id == dataset and a.run_name == "TS_000"]
    theirs = next(a for a in world.portal.annotations if a.dataset_id == dataset and a.run_name == "TS_001")
    world.delete(ours[0].metadata_key, theirs.metadata_key)
    result = world.reconciler().scan_shard(Scope(dataset_id=dataset, run_ids=(run_id["TS_000"],)))
    assert result.annotations == len(ours) and result.prefixes_listed == 1
    assert result.quarantined == [world.ids[ours[0].metadata_key]] and result.unknown == []
    assert world.ledger() == {world.ids[ours[0].metadata_key]: "quarantined"}


def test_a_prefix_emptied_whole_is_unknown_when_s3_cannot_say_what_its_dataset_folder_holds(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every metadata file of one run is gone: an ordinary retraction if the dataset folder still holds other
    objects, a vanished dataset if not. When the LIST that would tell fails, the rows are unknown with that error,
    neither quarantined nor held."""
    dataset = world.portal.dataset_ids[0]
    retracted = [a for a in world.portal.annotations if a.dataset_id == dataset and a.run_name == "TS_000"]
    world.delete(*(a.metadata_key for a in retracted))
    reconciler = world.reconciler()

    def refuse(folder: str, *args: Any, **kwargs: Any) -> bool:
        raise StorageError("ListObjectsV2", BUCKET, folder, RuntimeError("SlowDown"))

    monkeypatch.setattr(reconciler.storage, "holds_other_than", refuse)
    result = reconciler.scan_shard(Scope(dataset_id=dataset))
    assert sorted(u.ref.id for u in result.unknown) == sorted(world.ids[a.metadata_key] for a in retracted)
    assert all(
        u.why.startswith(f"could not check whether the dataset folder '{dataset}/' holds other objects: S3")
        for u in result.unknown
    )
    assert result.quarantined == [] and result.held == [] and world.ledger() == {}


def test_a_survey_names_the_scope_it_judged(world: World) -> None:
    dataset = world.portal.dataset_ids[0]
    found = world.reconciler().survey(Scope(dataset_id=dataset))
    assert found.scope == Scope(dataset_id=dataset)
    assert found.annotations == sum(1 for a in world.portal.annotations if a.dataset_id == dataset)
