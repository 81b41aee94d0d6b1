"""Detection that never goes blind (issue 18): a stale inventory is refused, event order survives delivery,
a listing is evidence only for what came before it, a bad prefix is isolated, the events path does not wait
on a purge's lock, and a missing-file report closes only when its own keys come back. Real PostgreSQL, moto."""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import json
import threading
import time
import tracemalloc
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from annotation_reconciler import handlers
from annotation_reconciler.cli.main import cli
from annotation_reconciler.ledger import blind_prefixes
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules import prefix_retry
from annotation_reconciler.rules.listings import metadata_folder
from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.storage import inventory
from support.faults import break_changes_of, inject_at
from support.inventory import INVENTORY_BUCKET, MANIFEST, report
from support.wired import Wired
from support.world import BUCKET, World, s3_notification, sqs_event

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@pytest.fixture
def world_spec() -> PortalSpec:
    return PortalSpec(datasets=2, runs_per_dataset=6, annotations_per_voxel_spacing=3)


def change(key: str, kind: ChangeKind, when: datetime.datetime, sequencer: str | None = None) -> ObjectChange:
    return ObjectChange(BUCKET, key, kind, "s3", when, sequencer)


def notification(key: str, name: str, when: datetime.datetime, sequencer: str | None = None) -> dict[str, Any]:
    return s3_notification(BUCKET, key, name, when.isoformat().replace("+00:00", "Z"), sequencer)


# --- 1. freshness ---------------------------------------------------------------------------------


def test_a_stale_inventory_is_refused_and_the_schedule_lists_instead(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = wired.world
    lost = world.portal.metadata_keys[3]
    world.delete(lost)  # its event was lost
    # the last report the configuration delivered, three days ago, still lists it
    report(world.s3, world.portal.all_keys(), created=T0 - datetime.timedelta(days=3))
    runtime = dataclasses.replace(
        wired.runtime, settings=dataclasses.replace(wired.runtime.settings, inventory_manifest=MANIFEST)
    )
    monkeypatch.setattr(handlers.common, "runtime_factory", lambda: runtime)
    answer = handlers.handle_schedule({"action": "reconcile"}, LocalContext())
    assert "inventory" not in answer and answer["shards_queued"] == 2  # the LIST fan-out, one shard per dataset
    assert wired.metrics["InventoryStale"] == 1
    wired.work().drain()
    assert world.ledger() == {world.ids[lost]: "quarantined"}


def test_a_fresh_inventory_is_still_used(wired: Wired, monkeypatch: pytest.MonkeyPatch) -> None:
    world = wired.world
    report(world.s3, world.portal.all_keys(), created=T0 - datetime.timedelta(hours=47))
    runtime = dataclasses.replace(
        wired.runtime, settings=dataclasses.replace(wired.runtime.settings, inventory_manifest=MANIFEST)
    )
    monkeypatch.setattr(handlers.common, "runtime_factory", lambda: runtime)
    answer = handlers.handle_schedule({"action": "reconcile"}, LocalContext())
    assert answer["inventory"]["candidates"] == 0 and "InventoryStale" not in wired.metrics


def test_inventory_files_are_read_as_streams(s3: Any) -> None:
    """A report file is never held whole in memory: the peak stays far below its decompressed size."""
    s3.create_bucket(Bucket=INVENTORY_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    keys = [f"10001/TS_{i:06d}/Reconstructions/VoxelSpacing13.480/Annotations/{i}/x-1.0.json" for i in range(120_000)]
    location = report(s3, keys, created=T0, rows_per_file=len(keys))
    manifest = inventory.read_manifest(s3, location)
    (data_key, _) = manifest.files[0]
    size = len(gzip.decompress(s3.get_object(Bucket=INVENTORY_BUCKET, Key=data_key)["Body"].read()))
    tracemalloc.start()
    try:
        count = sum(1 for _ in inventory.iter_present_keys(s3, manifest))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(keys)
    assert peak < size / 4, f"peak {peak} bytes for a file of {size} bytes decompressed"


# --- 2. order survives delivery -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("removed_at", "created_at"),
    [
        ((T0 + datetime.timedelta(seconds=5), "0A"), (T0 + datetime.timedelta(seconds=1), "0B")),  # by eventTime
        ((T0, "0A"), (T0, "9")),  # same eventTime: by sequencer, the shorter left-padded ("09" < "0A")
    ],
)
def test_an_older_created_redelivered_in_a_later_batch_changes_nothing(
    wired: Wired, removed_at: tuple[datetime.datetime, str], created_at: tuple[datetime.datetime, str]
) -> None:
    world = wired.world
    key = world.portal.metadata_keys[0]
    world.delete(key)
    reconciler = wired.runtime.reconciler
    assert reconciler.apply_changes([change(key, ChangeKind.REMOVED, *removed_at)]).quarantined == [world.ids[key]]
    late = reconciler.apply_changes([change(key, ChangeKind.CREATED, *created_at)])  # redelivered, older
    assert late.released == [] and late.out_of_order == 1
    assert world.ledger() == {world.ids[key]: "quarantined"}
    with world.engine.connect() as conn:
        row = conn.execute(
            text("SELECT event_time, event_sequencer FROM annotation_reconciler.annotation_quarantine")
        ).one()
    assert (row.event_time, row.event_sequencer) == removed_at


def test_a_removed_older_than_the_release_changes_nothing(wired: Wired) -> None:
    world = wired.world
    key = world.portal.metadata_keys[0]
    reconciler = wired.runtime.reconciler
    reconciler.apply_changes([change(key, ChangeKind.REMOVED, T0, "01")])
    assert reconciler.apply_changes([change(key, ChangeKind.CREATED, T0, "03")]).released == [world.ids[key]]
    late = reconciler.apply_changes([change(key, ChangeKind.REMOVED, T0, "02")])  # delayed: before the re-upload
    assert late.quarantined == [] and late.out_of_order == 1
    assert world.ledger() == {world.ids[key]: "released"}
    newer = reconciler.apply_changes([change(key, ChangeKind.REMOVED, T0 + datetime.timedelta(seconds=1), "04")])
    assert newer.quarantined == [world.ids[key]]


def test_the_batch_fallback_applies_the_healthy_messages_together_in_event_order(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = wired.world
    key, poison = world.portal.metadata_keys[0], world.portal.metadata_keys[1]
    world.delete(key)
    break_changes_of(monkeypatch, poison)
    later = T0 + datetime.timedelta(seconds=10)
    event = sqs_event(  # arrival order: the removal, then the older creation it followed, then a poisoned message
        notification(key, "ObjectRemoved:Delete", later, "0C"),
        notification(key, "ObjectCreated:Put", T0, "0B"),
        notification(poison, "ObjectRemoved:Delete", later),
    )
    answer = handlers.handle_events(event, LocalContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert world.ledger() == {world.ids[key]: "quarantined"}


# --- 3. a listing is evidence only for what happened before it ------------------------------------


def _during_listing(reconciler: Any, monkeypatch: pytest.MonkeyPatch, after: Any) -> None:
    storage = reconciler.storage
    original = storage.list_many

    def list_then(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        after()
        return found

    monkeypatch.setattr(storage, "list_many", list_then)


def test_a_key_deleted_after_its_prefix_was_listed_is_not_released_by_the_scan(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = wired.world
    key = world.portal.annotations[0].metadata_key
    reconciler = wired.runtime.reconciler

    def deleted_meanwhile() -> None:
        world.delete(key)
        world.clock.advance(seconds=30)
        reconciler.apply_changes([change(key, ChangeKind.REMOVED, world.clock.now - datetime.timedelta(seconds=5))])

    _during_listing(reconciler, monkeypatch, deleted_meanwhile)
    result = reconciler.scan_shard(Scope(dataset_id=world.portal.annotations[0].dataset_id))
    assert result.released == []
    assert world.ledger() == {world.ids[key]: "quarantined"}


def test_a_key_restored_after_its_prefix_was_listed_is_not_quarantined_again_by_the_scan(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = wired.world
    key = world.portal.annotations[0].metadata_key
    reconciler = wired.runtime.reconciler
    world.delete(key)
    reconciler.apply_changes([change(key, ChangeKind.REMOVED, T0 - datetime.timedelta(minutes=5))])
    world.clock.advance(minutes=1)

    def restored_meanwhile() -> None:
        world.restore(key)
        world.clock.advance(seconds=30)
        released = reconciler.apply_changes([change(key, ChangeKind.CREATED, world.clock.now)]).released
        assert released == [world.ids[key]]

    _during_listing(reconciler, monkeypatch, restored_meanwhile)
    result = reconciler.scan_shard(Scope(dataset_id=world.portal.annotations[0].dataset_id))
    assert result.quarantined == []
    assert world.ledger() == {world.ids[key]: "released"}


# --- 4. a bad prefix is isolated ------------------------------------------------------------------


class Budget(LocalContext):
    """A Lambda context with time for ``checks`` budget checks, then under the safety margin."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks

    def get_remaining_time_in_millis(self) -> int:
        self.checks -= 1
        return 120_000 if self.checks >= 0 else 10_000


def test_a_bad_prefix_is_retried_alone_then_reported_while_the_rest_is_scanned(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = wired.world
    dataset = world.portal.annotations[0].dataset_id
    keys = sorted(a.metadata_key for a in world.portal.annotations if a.dataset_id == dataset)
    folders = sorted({metadata_folder(k) for k in keys})
    bad = folders[1]
    lost = [k for k in keys if metadata_folder(k) != bad][::3]  # deletions whose events were lost
    world.delete(*lost)
    inject_at(wired.runtime.reconciler.storage.client, "ListObjectsV2", bad)
    monkeypatch.setattr(prefix_retry, "RETRY_DELAY_S", 0)
    # the budget allows three listings: the bad prefix among them, the rest left for the continuation
    answer = handlers.handle_work(sqs_event({"type": "scan_shard", "dataset_id": dataset}), Budget(checks=3))
    assert answer == {"batchItemFailures": []}
    continuation, retry = wired.queued()
    assert continuation == {"type": "scan_shard", "dataset_id": dataset, "resume_after": folders[2]}
    assert retry == {"type": "scan_shard", "dataset_id": dataset, "prefixes": [bad], "attempt": 1}
    for body in (continuation, retry):
        wired.sqs.send_message(QueueUrl=wired.work_url, MessageBody=json.dumps(body))
    outcomes = wired.work().drain()
    assert sum(o.failed for o in outcomes) == 0
    assert sum(o.received for o in outcomes) == 2 + prefix_retry.MAX_PREFIX_RETRIES - 1  # retries 2 and 3
    assert world.ledger() == {world.ids[k]: "quarantined" for k in lost}
    assert wired.metrics["PrefixesBlind"] == 1
    status = CliRunner().invoke(cli, ["status", "--db-url", world.db_url, "--output", "json"])
    assert status.exit_code == 0, status.output
    (blind,) = json.loads(status.output)["blind_prefixes"]
    assert blind["prefix"] == bad and blind["dataset_id"] == dataset and "AccessDenied" in blind["last_error"]
    text_status = CliRunner().invoke(cli, ["status", "--db-url", world.db_url])
    assert f"blind prefix: {bad}" in text_status.output


def test_a_retry_lists_only_the_prefixes_it_names(world: World) -> None:
    """A retry message scans its failed prefixes, not the whole shard again; the rows it quarantines carry
    their dataset, run and stored path (approve and the guard find them by dataset)."""
    dataset = world.portal.annotations[0].dataset_id
    keys = sorted(a.metadata_key for a in world.portal.annotations if a.dataset_id == dataset)
    folders = sorted({metadata_folder(k) for k in keys})
    named, other = (next(k for k in keys if metadata_folder(k) == f) for f in folders[1:3])
    world.delete(named, other)
    result = world.reconciler().scan_shard(Scope(dataset_id=dataset), only_prefixes=[folders[1]])
    assert (result.listed_prefixes, result.prefixes_listed, result.stale) == ([folders[1]], 1, 1)
    assert result.scope == Scope(dataset_id=dataset)
    # only the named prefix's rows are judged: none of another prefix is reported unknown for want of its listing
    assert result.unknown == [] and result.present == sum(1 for k in keys if metadata_folder(k) == folders[1]) - 1
    with world.engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT q.annotation_id, q.dataset_id, q.run_id, q.s3_metadata_path, q.status, q.reason
                    FROM annotation_reconciler.annotation_quarantine q""")
        ).all()
        run_id, path = conn.execute(
            text("SELECT run_id, s3_metadata_path FROM annotation WHERE id = :id"), {"id": world.ids[named]}
        ).one()
    reason = "metadata not found by full reconciliation"
    assert [tuple(r) for r in rows] == [(world.ids[named], dataset, run_id, path, "quarantined", reason)]


def test_a_blind_prefix_that_lists_again_is_no_longer_reported(wired: Wired) -> None:
    world = wired.world
    dataset = world.portal.annotations[0].dataset_id
    bad = metadata_folder(world.portal.annotations[0].metadata_key)
    faults = inject_at(wired.runtime.reconciler.storage.client, "ListObjectsV2", bad)
    last = {"type": "scan_shard", "dataset_id": dataset, "prefixes": [bad], "attempt": prefix_retry.MAX_PREFIX_RETRIES}
    assert handlers.handle_work(sqs_event(last), LocalContext()) == {"batchItemFailures": []}
    assert wired.queued() == []  # no further retry: reported instead
    with world.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM annotation_reconciler.blind_prefix WHERE resolved_at IS NULL")
            ).scalar()
            == 1
        )
    faults.targets = frozenset()  # S3 lists it again the next day
    handlers.handle_work(sqs_event({"type": "scan_shard", "dataset_id": dataset}), LocalContext())
    with world.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM annotation_reconciler.blind_prefix WHERE resolved_at IS NULL")
            ).scalar()
            == 0
        )


# --- 5. the events path does not wait on a purge's lock -------------------------------------------


def test_a_release_waiting_on_a_held_row_lock_fails_fast_and_is_retried(wired: Wired) -> None:
    world = wired.world
    key = world.portal.metadata_keys[0]
    reconciler = wired.runtime.reconciler
    reconciler.apply_changes([change(key, ChangeKind.REMOVED, T0)])
    answers: list[Any] = []
    event = sqs_event(notification(key, "ObjectCreated:Put", T0 + datetime.timedelta(seconds=1)))
    with world.engine.connect() as holder:
        holder.begin()
        holder.execute(
            text("SELECT id FROM annotation_reconciler.annotation_quarantine FOR UPDATE")
        )  # a purge settling the row
        worker = threading.Thread(target=lambda: answers.append(handlers.handle_events(event, LocalContext())))
        started = time.monotonic()
        worker.start()
        worker.join(timeout=15)
        waited = time.monotonic() - started
        holder.rollback()
    worker.join()
    assert waited < 15, "the events path waited on the row lock instead of failing fast"
    assert answers == [{"batchItemFailures": [{"itemIdentifier": "m-0"}]}]
    assert world.ledger() == {world.ids[key]: "quarantined"}
    assert handlers.handle_events(event, LocalContext()) == {"batchItemFailures": []}  # SQS redelivers it
    assert world.ledger() == {world.ids[key]: "released"}


# --- 6. missing-file reports ----------------------------------------------------------------------


def test_a_rewritten_chunk_does_not_close_the_report_of_another_chunk(wired: Wired) -> None:
    world = wired.world
    ann = world.portal.annotations[0]
    zarr = next(f for f in ann.files if f.is_prefix)
    first, second = (k for k in ann.noise_keys if k.startswith(zarr.key + "/0/"))
    reconciler = wired.runtime.reconciler

    def open_reports() -> list[tuple[str, list[str]]]:
        with world.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT removed_key, removed_keys FROM "
                    "annotation_reconciler.missing_annotation_file WHERE resolved_at IS NULL"
                )
            ).all()
        return [(r[0], list(r[1])) for r in rows]

    assert reconciler.apply_changes([change(first, ChangeKind.REMOVED, T0)]).missing_files == 1
    assert reconciler.apply_changes([change(second, ChangeKind.CREATED, T0)]).restored_files == 0  # rewritten
    assert open_reports() == [(first, [first])]
    reconciler.apply_changes([change(second, ChangeKind.REMOVED, T0)])  # now that one is gone too
    assert open_reports() == [(first, sorted([first, second]))]
    assert reconciler.apply_changes([change(first, ChangeKind.CREATED, T0)]).restored_files == 0
    assert open_reports() == [(first, [second])]
    assert reconciler.apply_changes([change(second, ChangeKind.CREATED, T0)]).restored_files == 1
    assert open_reports() == []


def test_a_blind_prefix_keeps_the_first_2000_characters_of_its_error(world: World) -> None:
    """S3's error text can be long (an HTML page from a proxy): the ledger keeps its first 2,000 characters."""
    error = "".join(f"{i % 10}" for i in range(2500))
    with world.engine.begin() as conn:
        blind_prefixes.record(conn, {"10001/TS_000/": error}, dataset_id=10001, now=world.clock())
    with world.engine.connect() as conn:
        kept = conn.execute(
            text("SELECT last_error FROM annotation_reconciler.blind_prefix WHERE prefix = '10001/TS_000/'")
        ).scalar_one()
    assert kept == error[:2000]
