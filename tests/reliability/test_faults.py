"""Fault injection: S3 throttles and 5xx, a database connection lost mid-purge, the Lambda clock
running out mid-scan, a poisoned SQS message. Each time: nothing valid is deleted, nothing is lost."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.retries.standard import ExponentialBackoff
from sqlalchemy import Engine, event, text

from annotation_reconciler import handlers
from annotation_reconciler.events import ChangeKind, ObjectChange
from annotation_reconciler.ledger.repository import Scope
from annotation_reconciler.local.lambda_runtime import LocalContext, LocalLambdaRuntime
from annotation_reconciler.runtime import build_runtime
from annotation_reconciler.storage import make_s3_client
from annotation_reconciler.storage.counting import RequestCounter
from support.faults import inject
from support.world import BUCKET, World, make_world, s3_notification, sqs_event


@pytest.fixture
def world(engine: Engine, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    # keep botocore's retries (and their count) but not their sleeps: the suite has a time budget
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    return make_world(engine, s3, db_url)


def removed(world: World, *keys: str) -> list[ObjectChange]:
    return [ObjectChange(BUCKET, k, ChangeKind.REMOVED, "s3", world.clock(), None) for k in keys]


def retrying_client() -> Any:
    """Our production client (standard retries, backoff) against the in-process moto."""
    return make_s3_client(region="us-west-2")


def test_transient_throttling_during_a_scan_is_retried(world: World) -> None:
    client = retrying_client()
    counter = RequestCounter.attach(client)
    faults = inject(client, "ListObjectsV2", 3)
    world.delete(world.portal.metadata_keys[0])
    result = world.reconciler(s3=client).scan_shard(Scope(dataset_id=10001))
    assert faults.injected == 3 and result.errors == []
    assert result.quarantined == [world.ids[world.portal.metadata_keys[0]]]
    assert counter.counts["ListObjectsV2"] == 3 + 3  # three prefixes, three retried throttles


def test_exhausted_retries_in_a_scan_decide_nothing(world: World) -> None:
    client = retrying_client()
    faults = inject(client, "ListObjectsV2", -1, status=500, code="InternalError")
    world.delete(*world.portal.metadata_keys[:3])
    result = world.reconciler(s3=client).scan_shard(Scope(dataset_id=10001))
    assert faults.injected >= 3 * 2  # each prefix retried (within botocore's retry quota), then reported
    assert result.quarantined == [] and len(result.errors) == 3 and len(result.unverifiable) == 12
    assert world.ledger() == {}


@pytest.mark.parametrize("operation", ["HeadObject", "ListObjectsV2"])
def test_exhausted_retries_at_the_purge_recheck_delete_nothing(world: World, operation: str) -> None:
    keys = world.portal.metadata_keys[:1] if operation == "HeadObject" else world.portal.metadata_keys[:2]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(world, *keys))
    world.clock.advance(hours=2)
    client = retrying_client()
    inject(client, operation, -1, status=503, code="SlowDown")
    result = world.reconciler(s3=client).purge()
    assert result.purged == [] and sorted(result.unknown) == sorted(world.ids[k] for k in keys)
    assert set(world.ledger().values()) == {"quarantined"}
    assert world.annotation_ids() == set(world.ids.values())
    assert sorted(world.reconciler().purge().purged) == sorted(world.ids[k] for k in keys)  # S3 back: done


def test_transient_throttle_at_the_recheck_still_purges(world: World) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    world.reconciler().apply_changes(removed(world, key))
    world.clock.advance(hours=2)
    client = retrying_client()
    faults = inject(client, "HeadObject", 2)
    assert world.reconciler(s3=client).purge().purged == [world.ids[key]] and faults.injected == 2


def test_connection_lost_mid_purge_batch_rolls_back_and_the_next_run_completes(world: World) -> None:
    keys = world.portal.metadata_keys[:4]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(world, *keys))
    world.clock.advance(hours=2)
    before = {t: world.children_of(set(world.ids.values())) for t in ("children",)}
    reconciler = world.reconciler()

    def kill_after_shapes(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("DELETE FROM annotation_shape"):
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with world.engine.connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    event.listen(world.engine, "after_cursor_execute", kill_after_shapes)
    try:
        with pytest.raises(Exception, match=r"(?i)terminat|connection|network"):
            reconciler.purge()
    finally:
        event.remove(world.engine, "after_cursor_execute", kill_after_shapes)
    assert world.annotation_ids() == set(world.ids.values())
    assert {"children": world.children_of(set(world.ids.values()))} == before and world.orphans() == 0
    assert set(world.ledger().values()) == {"quarantined"}
    world.engine.dispose()  # the pool holds the dead connection; a new invocation starts clean
    result = world.reconciler().purge()
    assert sorted(result.purged) == sorted(world.ids[k] for k in keys) and world.orphans() == 0


def test_time_budget_running_out_in_the_worker_queues_the_rest(
    world: World, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    sqs = boto3.client("sqs", region_name="us-west-2")
    work_url = sqs.create_queue(QueueName="work")["QueueUrl"]
    runtime = build_runtime(
        {
            "RECONCILER_DB_URL": db_url,
            "RECONCILER_BUCKET": BUCKET,
            "RECONCILER_WORK_QUEUE_URL": work_url,
            "AWS_DEFAULT_REGION": "us-west-2",
        }
    )
    monkeypatch.setattr(handlers, "runtime_factory", lambda: runtime)
    last = world.portal.annotations[-1].metadata_key
    world.delete(last)

    class ShortContext(LocalContext):
        calls = 0

        def get_remaining_time_in_millis(self) -> int:
            ShortContext.calls += 1
            return 120_000 if ShortContext.calls <= 1 else 10_000

    answer = handlers.handle_work(sqs_event({"type": "scan_shard", "dataset_id": 10002}), ShortContext())
    assert answer == {"batchItemFailures": []}
    assert world.ledger() == {}  # the budget ran out before the last prefix
    body = json.loads(sqs.receive_message(QueueUrl=work_url)["Messages"][0]["Body"])
    assert body["dataset_id"] == 10002 and body["resume_after"].endswith("/Annotations/")
    handlers.handle_work(sqs_event(body), LocalContext())
    assert world.ledger() == {world.ids[last]: "quarantined"}
    runtime.engine.dispose()


def test_poisoned_message_reaches_the_dlq_after_its_retries(
    world: World, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    sqs = boto3.client("sqs", region_name="us-west-2")
    dlq = sqs.create_queue(QueueName="events-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="events",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
    )["QueueUrl"]
    runtime = build_runtime({"RECONCILER_DB_URL": db_url, "RECONCILER_BUCKET": BUCKET})
    monkeypatch.setattr(handlers, "runtime_factory", lambda: runtime)
    good = world.portal.metadata_keys[0]
    world.delete(good)
    sqs.send_message(QueueUrl=queue, MessageBody='{"Records": [{"eventSource": "aws:s3", "truncated')
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(s3_notification(BUCKET, good)))
    mapping = LocalLambdaRuntime(sqs, queue, handlers.handle_events, wait_seconds=0, visibility_timeout=1)
    for _ in range(5):
        mapping.poll_once()
        time.sleep(1.05)  # the failed message becomes visible again, as after Lambda's visibility timeout
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ['{"Records": [{"eventSource": "aws:s3", "truncated']
    assert world.ledger() == {world.ids[good]: "quarantined"}
    runtime.engine.dispose()
