"""The mass-deletion guard, calibrated at the shipped default (issue 16): a lone retraction in a healthy run
is ordinary, a large share of a dataset or a whole dataset vanishing is held until an operator approves, the
guard counts every open row and not one batch, and the dataset-folder check behind it lists one key at a
time. Real PostgreSQL, moto S3."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Engine

from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.scope import Scope
from support.scenarios import ledger_rows, reconciler, three_of_five_purged
from support.world import BUCKET, World, make_world, removed


def test_guard_holds_a_mass_deletion_until_approved(world: World) -> None:
    dataset_keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == 10001]
    world.delete(*dataset_keys)
    reconciler = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="0.25")
    reconciler.apply_changes(removed(*dataset_keys))
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.deleted == [] and len(result.held) == len(dataset_keys)
    assert result.held_datasets == {10001: (12, 12)}
    assert world.annotation_ids() == set(world.ids.values())
    assert reconciler.purge().claimed == 0  # held rows wait for an operator
    assert reconciler.approve(10001) == len(dataset_keys)
    assert sorted(reconciler.purge().deleted) == sorted(world.ids[k] for k in dataset_keys)
    assert world.orphans() == 0


def test_guard_counts_all_open_rows_not_one_batch(world: World) -> None:
    """Small purge batches must not slip a mass deletion past the guard."""
    dataset_keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == 10002]
    world.delete(*dataset_keys)
    reconciler = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="0.25")
    reconciler.context = dataclasses.replace(reconciler.context, purge_batch_size=1)
    reconciler.apply_changes(removed(*dataset_keys))
    world.clock.advance(hours=2)
    result = reconciler.purge()
    ids = sorted(world.ids[k] for k in dataset_keys)
    assert result.deleted == [] and sorted(result.held) == ids
    assert {world.ledger()[i] for i in ids} == {"held"}
    assert set(ids) <= world.annotation_ids()


def test_a_lone_retraction_in_a_healthy_run_is_quarantined_then_purged_without_approval(small: World) -> None:
    """The only annotation of a voxel spacing loses its metadata (its event was lost); the run keeps its
    other objects. Today's rules held it; now the scan quarantines it and the purge deletes it."""
    lone = small.portal.annotations[0]
    small.delete(lone.metadata_key)
    r = reconciler(small)
    scan = r.scan_shard(Scope(dataset_id=lone.dataset_id))
    assert scan.quarantined == [small.ids[lone.metadata_key]] and scan.held == []
    small.clock.advance(hours=2)
    purge = r.purge()
    assert purge.deleted == [small.ids[lone.metadata_key]] and purge.held == []
    assert small.ledger()[small.ids[lone.metadata_key]] == "purged"


def test_a_retraction_of_the_whole_annotation_folder_is_ordinary_too(small: World) -> None:
    """Metadata and data files gone (the Annotations/ prefix lists nothing), the run's other objects stay."""
    lone = small.portal.annotations[1]
    folder = lone.metadata_key.rsplit("/", 1)[0] + "/"
    small.delete(*[k for k in small.portal.all_keys() if k.startswith(folder)])
    counter = _count_requests(small)
    scan = reconciler(small).scan_shard(Scope(dataset_id=lone.dataset_id))
    assert scan.quarantined == [small.ids[lone.metadata_key]] and scan.held == []
    # one LIST per Annotations/ prefix, plus one LIST of one key of the dataset folder (its first key,
    # 10001/TS_000/…, lies outside the empty prefix), and one LIST with a delimiter per folder level (5: the root
    # for the dataset folder, then the run down to Annotations/) of the
    # prefix that lacks a key (the spelling-twin check); never a HEAD
    assert counter.counts == {"ListObjectsV2": 5 + 1 + 5}


def _count_requests(world: World) -> Any:
    from annotation_reconciler.storage.counting import RequestCounter

    return RequestCounter.attach(world.s3)


def test_one_stale_annotation_in_a_dataset_of_five_is_purged_without_approval(small: World) -> None:
    victim = small.portal.annotations[2]
    small.delete(victim.metadata_key)
    r = reconciler(small)
    assert r.apply_changes(removed(victim.metadata_key)).quarantined == [small.ids[victim.metadata_key]]
    small.clock.advance(hours=2)
    purge = r.purge()
    assert purge.deleted == [small.ids[victim.metadata_key]] and purge.held == [] and purge.held_datasets == {}


def test_a_third_deletion_in_a_dataset_of_five_is_held(small: World) -> None:
    stale_keys, _, purge = three_of_five_purged(small)
    assert purge.deleted == [] and sorted(purge.held) == sorted(small.ids[k] for k in stale_keys)
    assert purge.held_datasets == {10001: (3, 5)}


def test_a_whole_dataset_vanishing_is_held_by_the_scan_and_by_the_purge(small: World) -> None:
    dataset = [a.metadata_key for a in small.portal.annotations if a.dataset_id == 10001]
    small.delete(*[k for k in small.portal.all_keys() if k.startswith("10001/")])
    r = reconciler(small)
    scan = r.scan_shard(Scope(dataset_id=10001))
    assert scan.quarantined == [] and sorted(scan.held) == sorted(small.ids[k] for k in dataset)
    # each held row names its own empty prefix (one reason per prefix, never another prefix's)
    prefix_of = {small.ids[k]: k.rsplit("/", 2)[0] + "/" for k in dataset}
    assert all(
        "holds nothing else" in row.reason and prefix_of[row.annotation_id] in row.reason
        for row in ledger_rows(small.engine)
    )
    # the same loss seen through events: quarantined, then held by the guard (5 of 5)
    other = [a.metadata_key for a in small.portal.annotations if a.dataset_id == 10002]
    small.delete(*other)
    r.apply_changes(removed(*other))
    small.clock.advance(hours=2)
    purge = r.purge()
    assert purge.deleted == [] and purge.held_datasets == {10002: (5, 5)}
    assert small.annotation_ids() == set(small.ids.values())


def test_a_prefix_setting_that_matches_nothing_is_held(engine: Engine, s3: Any, db_url: str) -> None:
    """Stored paths relative to a root the setting names wrongly: every listing and dataset folder is empty."""
    w = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=5, path_style="relative"))
    scan = reconciler(w, RECONCILER_S3_PREFIX=f"s3://{BUCKET}/portal/").scan_shard(Scope(dataset_id=10001))
    assert scan.quarantined == [] and len(scan.held) == len(w.ids)


def test_the_dataset_folder_check_lists_one_key_at_a_time_and_looks_past_the_empty_prefix(s3: Any) -> None:
    from annotation_reconciler.storage import S3Storage
    from annotation_reconciler.storage.counting import RequestCounter

    storage = S3Storage(s3, BUCKET)
    inner = "9/R/Reconstructions/VoxelSpacing1.000/Annotations/"
    counter = RequestCounter.attach(s3)
    assert storage.holds_other_than("9/", inner) is False and counter.counts == {"ListObjectsV2": 1}
    s3.put_object(Bucket=BUCKET, Key=f"{inner}100/data.ndjson", Body=b"")  # the first key is inside the prefix
    counter.reset()
    assert storage.holds_other_than("9/", inner) is False and counter.counts == {"ListObjectsV2": 2}
    s3.put_object(Bucket=BUCKET, Key="9/dataset_metadata.json", Body=b"{}")  # sorts after the prefix
    counter.reset()
    assert storage.holds_other_than("9/", inner) is True and counter.counts == {"ListObjectsV2": 2}
