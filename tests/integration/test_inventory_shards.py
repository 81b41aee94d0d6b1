"""The inventory reconciliation through the work queue (schedule plans, workers confirm slices
with a time budget and resume), and the schedule Lambda's ``migrate`` action. Real PostgreSQL, moto."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from sqlalchemy import inspect, text

from annotation_reconciler import handlers
from annotation_reconciler.db import make_engine
from annotation_reconciler.errors import StorageError
from annotation_reconciler.ledger import migrate
from annotation_reconciler.local.databases import DatabaseFactory, create_portal_schema
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.rules import prefix_retry
from annotation_reconciler.rules.listings import metadata_folder
from annotation_reconciler.service import inventory
from annotation_reconciler.service.runtime import build_runtime
from support import wired as wired_world
from support.inventory import MANIFEST
from support.inventory import report as write_report
from support.world import BUCKET, World, use_runtime

REPORT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class Wired(wired_world.Wired):
    def report(self, keys: list[str]) -> None:
        write_report(self.world.s3, keys, created=REPORT)


@pytest.fixture
def wired(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wired]:
    base = wired_world.wire(
        world, monkeypatch, RECONCILER_INVENTORY_MANIFEST=MANIFEST, RECONCILER_MAX_PURGE_FRACTION="0.1"
    )
    yield Wired(base.world, base.sqs, base.work_url, base.runtime, base.metrics)
    base.runtime.engine.dispose()


def keys_in_distinct_folders(world: World, n: int) -> list[str]:
    seen: dict[str, str] = {}
    for key in world.portal.metadata_keys:
        seen.setdefault(metadata_folder(key), key)
    assert len(seen) >= n
    return sorted(seen.values())[:n]


def test_schedule_queues_slices_and_workers_confirm_them(wired: Wired) -> None:
    world = wired.world
    keys = sorted(world.portal.all_keys())
    gone = keys_in_distinct_folders(world, 2)  # deleted before the report: absent from it and from S3
    late = next(k for k in world.portal.metadata_keys if k not in gone)  # created after the report
    world.delete(*gone)
    wired.report([k for k in keys if k not in gone and k != late])
    answer = handlers.handle_schedule({"action": "reconcile"}, LocalContext())
    assert answer["inventory"]["candidates"] == 3 and answer["inventory"]["shards_queued"] == 1
    assert answer["inventory"]["report_time"] == REPORT.isoformat()
    assert world.ledger() == {}  # the schedule decides nothing: only the workers, after S3 confirms
    outcomes = wired.work().drain()
    assert [(o.received, o.failed) for o in outcomes] == [(1, 0)]
    assert world.ledger() == {world.ids[k]: "quarantined" for k in gone}


def test_slices_stay_small_and_within_the_message_limit(wired: Wired) -> None:
    world = wired.world
    world.delete(*world.portal.metadata_keys[:7])
    wired.report([k for k in world.portal.all_keys() if k not in world.portal.metadata_keys[:7]])
    plan = world.reconciler().plan_inventory(MANIFEST)
    assert [k for _, k in plan.candidates] == sorted(world.portal.metadata_keys[:7])
    bodies = inventory.shard_messages(plan, slice_size=3)
    assert [len(b["candidates"]) for b in bodies] == [3, 3, 1]
    assert [tuple(c) for b in bodies for c in b["candidates"]] == plan.candidates
    # long keys: the byte limit cuts slices before SQS's 256 KiB would
    long_plan = dataclasses.replace(
        plan, candidates=[(i, "d/" + "x" * 900 + f"/Annotations/{i}/a-1.json") for i in range(600)]
    )
    long_bodies = inventory.shard_messages(long_plan)
    assert len(long_bodies) > 1 and max(inventory.message_size(b) for b in long_bodies) < 200_000
    assert sum(len(b["candidates"]) for b in long_bodies) == 600


class Countdown:
    """A Lambda context whose remaining time falls below the safety margin after ``calls`` checks."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.function_name = "work"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:work"
        self.aws_request_id = "countdown"

    def get_remaining_time_in_millis(self) -> int:
        self.calls -= 1
        return 600_000 if self.calls >= 0 else 5_000


def test_a_slice_out_of_time_queues_its_continuation_and_resumes(wired: Wired) -> None:
    world = wired.world
    gone = keys_in_distinct_folders(world, 3)
    world.delete(*gone)
    wired.report([k for k in world.portal.all_keys() if k not in gone])
    plan = wired.runtime.reconciler.plan_inventory(MANIFEST)
    body = inventory.shard_messages(plan)[0]
    from support.world import sqs_event

    # time for one folder only: the first is confirmed and written, the other two go back to the queue
    answer = handlers.handle_work(sqs_event(body), Countdown(calls=1))
    assert answer == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[gone[0]]: "quarantined"}
    (continuation,) = wired.peek()
    assert continuation["type"] == "inventory_shard" and continuation["report_time"] == REPORT.isoformat()
    assert [k for _, k in continuation["candidates"]] == gone[1:]
    wired.work().drain()
    assert world.ledger() == {world.ids[k]: "quarantined" for k in gone}


def test_a_candidate_changed_since_the_plan_is_skipped_not_quarantined(wired: Wired) -> None:
    world = wired.world
    gone, moved = keys_in_distinct_folders(world, 2)
    world.delete(gone, moved)
    wired.report([k for k in world.portal.all_keys() if k not in (gone, moved)])
    plan = wired.runtime.reconciler.plan_inventory(MANIFEST)
    with world.engine.begin() as conn:  # the portal re-points the annotation after the plan was made
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :id"),
            {"p": f"s3://{BUCKET}/{world.portal.metadata_keys[-1]}", "id": world.ids[moved]},
        )
    shard = inventory.read_shard(inventory.shard_messages(plan)[0])
    result = wired.runtime.reconciler.confirm_inventory_shard(shard)
    assert result.skipped == [world.ids[moved]] and result.quarantined == [world.ids[gone]]
    assert world.ledger() == {world.ids[gone]: "quarantined"}


def test_a_key_found_again_is_released(wired: Wired) -> None:
    world = wired.world
    (key,) = keys_in_distinct_folders(world, 1)
    world.delete(key)
    wired.report([k for k in world.portal.all_keys() if k != key])
    handlers.handle_schedule({"action": "reconcile"}, LocalContext())
    wired.work().drain()
    assert world.ledger() == {world.ids[key]: "quarantined"}
    world.restore(key)  # back before the grace ran out; the next report still lacks it
    world.clock.advance(minutes=30)  # the next run lists after the first (a listing decides only what came before)
    handlers.handle_schedule({"action": "reconcile"}, LocalContext())
    wired.work().drain()
    assert world.ledger() == {world.ids[key]: "released"}


def test_s3_errors_leave_candidates_alone_and_retry_only_them(wired: Wired, monkeypatch: pytest.MonkeyPatch) -> None:
    world = wired.world
    (key,) = keys_in_distinct_folders(world, 1)
    world.delete(key)
    wired.report([k for k in world.portal.all_keys() if k != key])
    plan = wired.runtime.reconciler.plan_inventory(MANIFEST)
    failing = boto3.client("s3", region_name="us-west-2")
    stub = Stubber(failing)
    for _ in range(6):
        stub.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
    shard = inventory.read_shard(inventory.shard_messages(plan)[0])
    with stub:
        result = world.reconciler(s3=failing).confirm_inventory_shard(shard)
    assert [(u.ref.id, u.key) for u in result.unknown] == [(world.ids[key], key)] and result.quarantined == []
    # through the handler (issue 27): the slice never fails for it; only the unknown candidate is asked about
    # again, in a message of its own, MAX_RETRIES times; then it is counted and waits for the next report
    reconciler = wired.runtime.reconciler

    def slow_down(prefixes: Any, **kwargs: Any) -> dict[str, Any]:
        return {p: StorageError("ListObjectsV2", BUCKET, p, RuntimeError("SlowDown")) for p in sorted(set(prefixes))}

    monkeypatch.setattr(reconciler.storage, "list_many", slow_down)  # S3 cannot say
    monkeypatch.setattr(prefix_retry, "RETRY_DELAY_S", 0)
    from support.world import sqs_event

    answer = handlers.handle_work(sqs_event(inventory.shard_messages(plan)[0]), LocalContext())
    assert answer == {"batchItemFailures": []}
    (again,) = wired.peek()
    assert again["candidates"] == [[world.ids[key], key]] and again["attempt"] == 1
    assert wired.metrics["AnnotationsUnknown"] == 0
    outcomes = wired.work().drain()
    assert [o.failed for o in outcomes] == [0] * inventory.MAX_RETRIES
    assert wired.metrics["AnnotationsUnknown"] == 1 and wired.peek() == []
    assert world.ledger() == {}


def test_a_slice_with_an_unknown_candidate_still_confirms_the_others_and_continues_first(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A twin spelling (S3 holds another spelling of the key) is unknown: the other candidates of the slice are
    quarantined, the continuation is queued before the retry of the unknown one."""
    world = wired.world
    twin, gone, later = keys_in_distinct_folders(world, 3)
    world.delete(twin, gone, later)
    world.s3.put_object(Bucket=BUCKET, Key=twin.replace(".json", ".JSON"), Body=b"{}")
    wired.report([k for k in world.portal.all_keys() if k not in (twin, gone, later)])
    monkeypatch.setattr(prefix_retry, "RETRY_DELAY_S", 0)
    plan = wired.runtime.reconciler.plan_inventory(MANIFEST)
    body = inventory.shard_messages(plan)[0]
    from support.world import sqs_event

    assert handlers.handle_work(sqs_event(body), Countdown(calls=2)) == {"batchItemFailures": []}
    queued = wired.peek()
    assert [[k for _, k in m["candidates"]] for m in queued] == [[later], [twin]]
    assert world.ledger() == {world.ids[gone]: "quarantined"}
    wired.work().drain()
    assert world.ledger() == {world.ids[gone]: "quarantined", world.ids[later]: "quarantined"}
    assert wired.metrics["AnnotationsUnknown"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"manifest": "portal-inventory/x"}, "s3:// URL"),
        ({"report_time": "yesterday"}, "ISO 8601"),
        ({"report_time": "2026-01-01T00:00:00"}, "time zone"),
        ({"candidates": []}, "non-empty list"),
        ({"candidates": [[True, "10001/r/Reconstructions/VoxelSpacing1/Annotations/1/a-1.json"]]}, "is not"),
        ({"candidates": [[1, "10001/r/run_metadata.json"]]}, "is not [annotation_id, metadata key]"),
        ({"type": "scan_shard"}, "not an inventory shard"),
    ],
)
def test_malformed_inventory_messages_are_refused(change: dict[str, Any], message: str) -> None:
    body = {
        "type": "inventory_shard",
        "manifest": MANIFEST,
        "report_time": REPORT.isoformat(),
        "candidates": [[1, "10001/r/Reconstructions/VoxelSpacing1/Annotations/1/a-1.json"]],
        **change,
    }
    with pytest.raises(ValueError) as info:
        inventory.read_shard(body)
    assert message in str(info.value)


def test_the_worker_fails_a_malformed_inventory_message_alone(wired: Wired) -> None:
    from support.world import sqs_event

    bad = {"type": "inventory_shard", "manifest": MANIFEST, "report_time": REPORT.isoformat(), "candidates": []}
    good = {"type": "scan_shard", "dataset_id": wired.world.portal.annotations[0].dataset_id}
    assert handlers.handle_work(sqs_event(bad, good), LocalContext()) == {
        "batchItemFailures": [{"itemIdentifier": "m-0"}]
    }


# --- {"action": "migrate"} is the owner's, not the Lambdas' -----------------------------------------


def test_the_schedule_lambda_refuses_to_migrate_and_says_who_does(
    db_factory: DatabaseFactory, worker_id: str, monkeypatch: pytest.MonkeyPatch, aws: None
) -> None:
    """The Lambdas' role may create nothing (issue 24): `{"action": "migrate"}` is refused with the owner's command,
    before the runtime is even built, and nothing is created."""
    wired_world.quiet(monkeypatch)
    url = db_factory.empty(f"migrate_action_{worker_id}")
    engine = make_engine(url)
    create_portal_schema(engine)
    runtime = build_runtime({"RECONCILER_DB_URL": url, "RECONCILER_BUCKET": BUCKET})
    use_runtime(monkeypatch, runtime)
    for event in ({"action": "migrate"}, {"detail": {"action": "migrate"}}):
        with pytest.raises(ValueError, match="the Lambdas no longer migrate") as info:
            handlers.handle_schedule(event, LocalContext())
        assert "annotation-reconciler migrate --db-url" in str(info.value)
        assert "annotation-reconciler grants --role" in str(info.value)
    assert migrate.current_revision(engine) is None
    assert "annotation_quarantine" not in inspect(engine).get_table_names(schema="annotation_reconciler")
    runtime.engine.dispose()
    engine.dispose()


def test_an_inventory_reconciliation_also_needs_the_work_queue(wired: Wired, monkeypatch: pytest.MonkeyPatch) -> None:
    """Confirming candidates inline could outlast the Lambda: without the queue the schedule refuses."""
    wired.report(sorted(wired.world.portal.all_keys()))
    runtime = dataclasses.replace(
        wired.runtime, settings=dataclasses.replace(wired.runtime.settings, work_queue_url=None)
    )
    use_runtime(monkeypatch, runtime)
    with pytest.raises(ValueError, match="set RECONCILER_WORK_QUEUE_URL"):
        handlers.handle_schedule({"action": "reconcile"}, LocalContext())


def test_a_report_too_large_for_the_budget_falls_back_to_listing(wired: Wired) -> None:
    """Issue 27: an inventory the schedule cannot read within its budget queues the LIST shards instead."""
    gone = wired.world.portal.metadata_keys[0]
    wired.world.delete(gone)
    wired.report(sorted(wired.world.portal.all_keys())[1:])
    answer = handlers.handle_schedule({"action": "reconcile"}, Countdown(calls=0))
    assert "inventory" not in answer and answer["shards_queued"] > 0
    assert wired.metrics["InventoryUnreadable"] == 1
    assert all(m["type"] == "scan_shard" for m in wired.peek())
    wired.work().drain()
    assert wired.world.ledger() == {wired.world.ids[gone]: "quarantined"}


def _drop_a_data_file(wired: Wired) -> None:
    location = inventory_manifest(wired)
    wired.world.s3.delete_object(Bucket=location[0], Key=location[1]["files"][0]["key"])


def _tamper_a_data_file(wired: Wired) -> None:
    import gzip

    location = inventory_manifest(wired)
    wired.world.s3.put_object(Bucket=location[0], Key=location[1]["files"][0]["key"], Body=gzip.compress(b"x"))


def _inventory_of_another_bucket(wired: Wired) -> None:
    bucket, manifest, key = inventory_manifest(wired, with_key=True)
    manifest["sourceBucket"] = "another-bucket"
    wired.world.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())


def _no_report(wired: Wired) -> None:
    bucket, _, key = inventory_manifest(wired, with_key=True)
    wired.world.s3.delete_object(Bucket=bucket, Key=key)


def inventory_manifest(wired: Wired, *, with_key: bool = False) -> Any:
    from annotation_reconciler.storage.inventory import find_manifest

    location = find_manifest(wired.world.s3, MANIFEST)
    manifest = json.loads(wired.world.s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read())
    return (location.bucket, manifest, location.key) if with_key else (location.bucket, manifest)


@pytest.mark.parametrize("spoil", [_drop_a_data_file, _tamper_a_data_file, _inventory_of_another_bucket, _no_report])
def test_any_unreadable_inventory_falls_back_to_listing(wired: Wired, spoil: Any) -> None:
    """Issue 27: a missing data file, an MD5 mismatch, a manifest for another bucket, no report at all: the
    schedule counts InventoryUnreadable and queues the LIST fan-out; the lost deletion is still found."""
    world = wired.world
    (gone,) = keys_in_distinct_folders(world, 1)
    world.delete(gone)
    wired.report([k for k in world.portal.all_keys() if k != gone])
    spoil(wired)
    answer = handlers.handle_schedule({"action": "reconcile"}, LocalContext())
    assert "inventory" not in answer and answer["shards_queued"] > 0
    assert wired.metrics["InventoryUnreadable"] == 1 and wired.metrics["InventoryStale"] == 0
    wired.work().drain()
    assert world.ledger() == {world.ids[gone]: "quarantined"}
