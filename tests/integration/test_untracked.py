"""Untracked metadata (issue 25, point 7): a metadata file in S3 that no annotation row points to is reported by
the scans (CLI, work shards, inventory) in text and JSON, by `status`, and as the metric MetadataUntracked; a key
that becomes tracked (ingested) or goes drops out. Real PostgreSQL, moto."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from annotation_reconciler import handlers
from annotation_reconciler.cli.main import cli
from annotation_reconciler.db_import import ingest
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.storage import S3Storage
from support.inventory import INVENTORY_BUCKET, MANIFEST, report
from support.wired import Wired
from support.world import BUCKET, World, sqs_event


def copy_of(world: World, index: int, new_name: str) -> str:
    """A copy of annotation ``index``'s metadata under another file name (same folder): no row points to it."""
    key = world.portal.metadata_keys[index]
    copy = key.rsplit("/", 1)[0] + "/" + new_name
    world.s3.copy_object(Bucket=BUCKET, Key=copy, CopySource={"Bucket": BUCKET, "Key": key})
    return copy


def new_annotation(world: World, index: int, folder: str, name: str) -> str:
    """A new annotation's metadata in a new folder of annotation ``index``'s voxel spacing (not ingested yet)."""
    key = world.portal.metadata_keys[index]
    document = json.loads(world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    document["annotation_ingest_id"] = f"{folder}-{name}"
    document["files"] = []
    new = key.rsplit("/", 2)[0] + f"/{folder}/{name}.json"
    world.s3.put_object(Bucket=BUCKET, Key=new, Body=json.dumps(document).encode())
    return new


def status_json(world: World) -> dict[str, Any]:
    out = CliRunner().invoke(cli, ["status", "--db-url", world.db_url, "--output", "json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)  # type: ignore[no-any-return]


def test_untracked_metadata_is_reported_by_every_scan_and_status_until_it_is_ingested(wired: Wired) -> None:
    world = wired.world
    copied = copy_of(world, 1, "membrane-copy-1.0.json")  # dataset 10001, run TS_000
    fresh = new_annotation(world, 4, "104", "vesicle-1.0")  # dataset 10001, run TS_001
    run_name = fresh.split("/")[1]
    # a caption decoy is a data file, not metadata: never reported
    world.s3.put_object(
        Bucket=BUCKET, Key=copied.rsplit("/", 1)[0] + "/101-membrane-1.0_globalcaption.json", Body=b"{}"
    )
    # the work shard: metric and result
    answer = handlers.handle_work(sqs_event({"type": "scan_shard", "dataset_id": 10001}), LocalContext())
    assert answer == {"batchItemFailures": []}
    assert wired.metrics["MetadataUntracked"] == 2
    # the CLI scan, text and JSON
    runner = CliRunner()
    base = ["scan", "--db-url", world.db_url, "--bucket", BUCKET, "--dataset-id", "10001"]
    text_out = runner.invoke(cli, base, env={"COLUMNS": "200"})
    assert text_out.exit_code == 0, text_out.output
    assert f"untracked metadata: {copied}" in text_out.output and f"untracked metadata: {fresh}" in text_out.output
    json_out = runner.invoke(cli, [*base, "--output", "json"])
    assert json_out.exit_code == 0, json_out.output
    (shard,) = json.loads(json_out.output)["shards"]
    assert shard["untracked"] == sorted([copied, fresh])
    # status, text and JSON
    listed = status_json(world)["untracked_metadata"]
    assert [u["metadata_key"] for u in listed] == sorted([copied, fresh])
    assert all(u["ingest"].startswith("annotation-reconciler ingest") for u in listed)
    status_text = runner.invoke(cli, ["status", "--db-url", world.db_url], env={"COLUMNS": "200"})
    assert f"untracked metadata: {fresh}" in status_text.output
    # ingested, the new annotation is tracked: the next scan drops it; a copy deleted drops out too
    storage = S3Storage(world.s3, BUCKET)
    done = ingest(world.engine, storage, BucketLayout(BUCKET), 10001, run_name)
    assert done.problems == [], done.problems
    world.delete(copied)
    world.reconciler().scan_shard(Scope(dataset_id=10001))
    assert status_json(world)["untracked_metadata"] == []


def test_an_untracked_key_tracked_by_a_row_of_another_scope_is_not_reported(world: World) -> None:
    """A legacy row of another dataset's scope may point into this prefix: tracked is tracked, whoever's row."""
    from sqlalchemy import text

    copied = copy_of(world, 1, "membrane-copy-1.0.json")
    other = world.portal.metadata_keys[-1]  # a row of dataset 10002
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :id"),
            {"p": copied, "id": world.ids[other]},  # a relative stored path: another stored form
        )
    result = world.reconciler().scan_shard(Scope(dataset_id=10001))
    assert result.untracked == []


def test_the_inventory_reports_untracked_metadata_and_drops_it_when_gone(world: World) -> None:
    world.s3.create_bucket(Bucket=INVENTORY_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    copied = copy_of(world, 2, "actin-copy-1.0.json")
    world.clock.now = world.clock.now.replace(year=2026)
    report(world.s3, [*world.portal.all_keys(), copied], created=world.clock.now)
    r = world.reconciler(RECONCILER_INVENTORY_MAX_AGE_HOURS="48")
    assert r.plan_inventory(MANIFEST).untracked == [copied]
    assert [u["metadata_key"] for u in status_json(world)["untracked_metadata"]] == [copied]
    world.clock.advance(hours=1)
    report(world.s3, world.portal.all_keys(), created=world.clock.now)
    assert r.plan_inventory(MANIFEST).untracked == []
    assert status_json(world)["untracked_metadata"] == []


def test_a_scan_of_one_dataset_leaves_the_untracked_keys_of_another_open(world: World) -> None:
    """A shard's scan closes the untracked rows of the prefixes it listed only: another dataset's stay reported
    (only an S3 Inventory report, which covers the whole bucket, closes every key it lacks)."""
    first, other = world.portal.dataset_ids[:2]
    index = next(i for i, a in enumerate(world.portal.annotations) if a.dataset_id == first)
    copied = copy_of(world, index, "copy-of-it-1.0.json")
    r = world.reconciler()
    r.scan_shard(Scope(dataset_id=first))
    r.scan_shard(Scope(dataset_id=other))
    assert [u["metadata_key"] for u in status_json(world)["untracked_metadata"]] == [copied]
