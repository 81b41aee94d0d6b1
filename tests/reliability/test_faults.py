"""Fault injection: S3 throttles and 5xx (below botocore's retry handler, so its retries and backoff run for
real) during event mapping, scans and the purge re-check; a database connection lost in the middle of a
purge batch or of event mapping; the Lambda clock running out mid-scan and mid-purge; poisoned SQS messages
on both queues. Each time: nothing valid is deleted, nothing is half-deleted, and nothing is lost."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import boto3
import pytest
from sqlalchemy import Engine, text

from annotation_reconciler import handlers
from annotation_reconciler.aws import MAX_ATTEMPTS
from annotation_reconciler.ledger import purge_claims
from annotation_reconciler.local.lambda_runtime import LocalContext, LocalLambdaRuntime
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.storage import make_s3_client
from annotation_reconciler.storage.counting import RequestCounter
from support.faults import ALL_OPERATIONS, INJECTED, ConnectionKiller, ShortContext, inject, record_backoff
from support.world import BUCKET, World, make_world, removed, s3_notification, sqs_event, table_counts

#: The two kinds of S3 failure the retry handler must absorb: a throttle and a server error.
FAULTS = {"throttled": (503, "SlowDown"), "internal-error": (500, "InternalError")}
#: botocore reads the retries' ``max_attempts`` as retries after the first request ("reached max retries: 6").
RETRIES = MAX_ATTEMPTS
ATTEMPTS = RETRIES + 1


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays botocore computes between attempts (recorded, not slept: the suite has a time budget)."""
    return record_backoff(monkeypatch)


@pytest.fixture
def world(engine: Engine, s3: Any, db_url: str, backoff: list[float]) -> World:
    """The shared world, with botocore's back-off recorded instead of slept."""
    return make_world(engine, s3, db_url)


def retrying_client() -> Any:
    """Our production client (standard retries, exponential backoff) against the in-process moto."""
    return make_s3_client(region="us-west-2")


def assert_exponential(delays: list[float], *, requests: int, retries: int) -> None:
    """``requests`` requests each retried ``retries`` times, each wait twice the one before (botocore caps a
    wait at 20 s)."""
    assert len(delays) == requests * retries, delays
    for n in range(requests):
        waits = delays[n * retries : (n + 1) * retries]
        assert waits[0] > 0 and waits == [min(waits[0] * 2**i, 20.0) for i in range(retries)], waits


# --- S3 faults during event mapping ---------------------------------------------------------------


def test_s3_outage_cannot_mislead_event_mapping_or_the_purge(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Event mapping asks the database only, so an S3 outage cannot change what it decides; the purge that
    follows cannot re-check S3 and deletes nothing until S3 answers again."""
    runtime = world.runtime(monkeypatch)
    gone, back = world.portal.metadata_keys[0], world.portal.metadata_keys[1]
    world.reconciler().apply_changes(removed(back, at=world.clock()))  # quarantined earlier; its metadata is back now
    world.delete(gone)
    client = runtime.reconciler.storage.client
    counter = RequestCounter.attach(client)
    outage = inject(client, ALL_OPERATIONS, -1, status=500, code="InternalError")
    batch = sqs_event(
        s3_notification(BUCKET, gone), s3_notification(BUCKET, back, "ObjectCreated:Put", "2026-01-01T00:00:01Z")
    )
    assert handlers.handle_events(batch, LocalContext()) == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[gone]: "quarantined", world.ids[back]: "released"}
    assert counter.total == 0 and outage.injected == 0  # no S3 request at all
    world.clock.advance(hours=2)
    answer = handlers.handle_schedule({"action": "purge"}, LocalContext())
    assert answer["purge"]["deleted"] == 0 and answer["purge"]["unknown"] == 1 and outage.injected == ATTEMPTS
    assert world.annotation_ids() == set(world.ids.values())
    outage.heal()
    assert handlers.handle_schedule({"action": "purge"}, LocalContext())["purge"]["deleted"] == 1
    assert world.annotation_ids() == set(world.ids.values()) - {world.ids[gone]}
    runtime.engine.dispose()


def test_database_connection_lost_during_event_mapping_loses_no_event(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies in the middle of the batch's transaction: it rolls back, and the handler's
    fallback (each message tried alone and rolled back, then the healthy ones together) applies every
    message, each once."""
    runtime = world.runtime(monkeypatch)
    keys = world.portal.metadata_keys[:3]
    world.delete(*keys)
    with ConnectionKiller(runtime.engine, "INSERT INTO annotation_reconciler.annotation_quarantine") as killer:
        answer = handlers.handle_events(sqs_event(*(s3_notification(BUCKET, k) for k in keys)), LocalContext())
    # the batch's insert, one per message tried alone (rolled back), then the healthy ones together
    assert killer.killed == 1 and killer.seen == 1 + 3 + 1
    assert answer == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[k]: "quarantined" for k in keys}
    with world.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM annotation_reconciler.annotation_quarantine")).scalar_one() == 3
    runtime.engine.dispose()


def test_database_down_during_event_mapping_fails_every_message_for_redelivery(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    batch = sqs_event(s3_notification(BUCKET, key), s3_notification(BUCKET, world.portal.metadata_keys[1]))
    down = world.runtime(monkeypatch, RECONCILER_DB_URL="postgresql+pg8000://reconciler@127.0.0.1:1/portal")
    INJECTED["database unreachable during event mapping"] += 1
    answer = handlers.handle_events(batch, LocalContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}
    assert world.ledger() == {}
    up = world.runtime(monkeypatch)  # SQS redelivers both once the database is back
    assert handlers.handle_events(batch, LocalContext()) == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[key]: "quarantined", world.ids[world.portal.metadata_keys[1]]: "quarantined"}
    down.engine.dispose()
    up.engine.dispose()


# --- S3 faults during a scan --------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_transient_s3_faults_during_a_scan_are_retried_with_backoff(
    world: World, backoff: list[float], fault: str
) -> None:
    status, code = FAULTS[fault]
    client = retrying_client()
    counter = RequestCounter.attach(client)
    faults = inject(client, "ListObjectsV2", 3, status=status, code=code)
    world.delete(world.portal.metadata_keys[0])
    # one listing at a time, so that the three faults all hit the first request and its backoff shows in order
    result = world.reconciler(s3=client, RECONCILER_S3_CONCURRENCY="1").scan_shard(Scope(dataset_id=10001))
    assert faults.injected == 3 and result.errors == []
    assert result.quarantined == [world.ids[world.portal.metadata_keys[0]]]
    # three prefixes, three retried faults, and the twin check of the prefix that lacks a key: one LIST with a
    # delimiter per folder level (5: the root for the dataset folder, then the run down to Annotations/)
    assert counter.counts["ListObjectsV2"] == 3 + 3 + 5
    assert_exponential(backoff, requests=1, retries=3)


@pytest.mark.parametrize("concurrency", [1, 8])
@pytest.mark.parametrize("fault", FAULTS)
def test_exhausted_retries_in_a_scan_decide_nothing(
    world: World, backoff: list[float], fault: str, concurrency: int
) -> None:
    status, code = FAULTS[fault]
    client = retrying_client()
    faults = inject(client, "ListObjectsV2", -1, status=status, code=code)
    world.delete(*world.portal.metadata_keys[:3])
    result = world.reconciler(s3=client, RECONCILER_S3_CONCURRENCY=str(concurrency)).scan_shard(Scope(dataset_id=10001))
    assert faults.injected == 3 * ATTEMPTS  # each of the three prefixes tried seven times, then reported
    if concurrency == 1:
        assert_exponential(backoff, requests=3, retries=RETRIES)
    else:  # the three listings retry side by side: their waits interleave, each still doubling
        first = min(backoff)
        assert sorted(backoff) == sorted([min(first * 2**i, 20.0) for i in range(RETRIES)] * 3), backoff
    assert result.quarantined == [] and len(result.errors) == 3 and len(result.unknown) == 12
    assert world.ledger() == {}


def test_worker_reports_a_shard_s3_cannot_list_and_its_redelivery_completes(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = world.runtime(monkeypatch)
    key = world.portal.metadata_keys[0]
    world.delete(key)
    outage = inject(runtime.reconciler.storage.client, ALL_OPERATIONS, -1)
    shard = sqs_event({"type": "scan_shard", "dataset_id": 10001})
    assert handlers.handle_work(shard, LocalContext()) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert world.ledger() == {} and outage.injected == 3 * ATTEMPTS
    outage.heal()  # SQS redelivers the shard after the visibility timeout
    assert handlers.handle_work(shard, LocalContext()) == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[key]: "quarantined"}
    runtime.engine.dispose()


# --- S3 faults at the purge re-check ------------------------------------------------------------


def due_for_purge(world: World, due: int) -> list[str]:
    """``due`` metadata keys of one ``Annotations/`` prefix deleted, quarantined and past their grace period:
    one LIST of that prefix re-checks them all (a HEAD cannot see a key spelled differently, so the
    re-check always lists)."""
    keys = world.portal.metadata_keys[:due]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys, at=world.clock()))
    world.clock.advance(hours=2)
    return keys


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("due", [1, 2])
def test_exhausted_retries_at_the_purge_recheck_delete_nothing(
    world: World, backoff: list[float], due: int, fault: str
) -> None:
    status, code = FAULTS[fault]
    keys = due_for_purge(world, due)
    client = retrying_client()
    inject(client, "ListObjectsV2", -1, status=status, code=code)
    result = world.reconciler(s3=client).purge()
    assert_exponential(backoff, requests=1, retries=RETRIES)
    assert result.deleted == [] and sorted(u.ref.id for u in result.unknown) == sorted(world.ids[k] for k in keys)
    assert set(world.ledger().values()) == {"quarantined"}
    assert world.annotation_ids() == set(world.ids.values())
    assert sorted(world.reconciler().purge().deleted) == sorted(world.ids[k] for k in keys)  # S3 back: done


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("due", [1, 2])
def test_transient_s3_faults_at_the_recheck_are_retried_and_the_purge_proceeds(
    world: World, backoff: list[float], due: int, fault: str
) -> None:
    status, code = FAULTS[fault]
    keys = due_for_purge(world, due)
    client = retrying_client()
    faults = inject(client, "ListObjectsV2", 2, status=status, code=code)
    assert sorted(world.reconciler(s3=client).purge().deleted) == sorted(world.ids[k] for k in keys)
    assert faults.injected == 2
    assert_exponential(backoff, requests=1, retries=2)


# --- the database connection lost mid-purge ------------------------------------------------------


def test_connection_lost_mid_purge_batch_rolls_back_and_the_next_run_completes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies in the middle of a batch's deletion: the batch rolls back whole (not one child row of
    it is gone), then its rows are settled one by one on a fresh connection (issue 27) and all are purged."""
    keys = world.portal.metadata_keys[:4]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys, at=world.clock()))
    world.clock.advance(hours=2)
    before = table_counts(world.engine)
    reconciler = world.reconciler()
    seen: list[dict[str, int]] = []
    lock = purge_claims.lock_claims

    def counted_then_locked(conn: Any, claims: Any) -> Any:
        if len(claims) == 1 and not seen:  # the first row settled alone, after the batch was killed
            seen.append(table_counts(world.engine))  # what the killed batch left: nothing
        return lock(conn, claims)

    monkeypatch.setattr(purge_claims, "lock_claims", counted_then_locked)
    # the function deleted the batch and wrote its audit; the connection dies before the ledger rows and the COMMIT
    with ConnectionKiller(world.engine, "annotation_reconciler_audit.delete_annotations(") as killer:
        result = reconciler.purge()
    assert killer.killed == 1 and seen == [before]
    assert sorted(result.deleted) == sorted(world.ids[k] for k in keys) and result.failed == []
    assert table_counts(world.engine)["annotation"] == before["annotation"] - 4 and world.orphans() == 0


def test_connection_lost_in_a_later_batch_keeps_the_committed_batches_whole(world: World) -> None:
    keys = world.portal.metadata_keys[:4]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys, at=world.clock()))
    world.clock.advance(hours=2)
    before = table_counts(world.engine)
    reconciler = world.reconciler(purge_batch_size=2)
    with ConnectionKiller(world.engine, "annotation_reconciler_audit.delete_annotations(", occurrence=2) as killer:
        result = reconciler.purge()  # the second batch rolls back, then its rows are settled one by one
    assert killer.killed == 1
    assert sorted(result.deleted) == sorted(world.ids[k] for k in keys) and result.failed == []
    assert set(world.ledger().values()) == {"purged"}
    after = table_counts(world.engine)
    assert after == {t: n - (n // len(world.ids)) * 4 for t, n in before.items()} and world.orphans() == 0


# --- the Lambda time budget ------------------------------------------------------------------------


def test_time_budget_running_out_in_the_worker_queues_the_rest(
    world: World, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    sqs = boto3.client("sqs", region_name="us-west-2")
    work_url = sqs.create_queue(QueueName="work")["QueueUrl"]
    runtime = world.runtime(monkeypatch, RECONCILER_WORK_QUEUE_URL=work_url)
    last = world.portal.annotations[-1].metadata_key
    world.delete(last)
    context = ShortContext()
    answer = handlers.handle_work(sqs_event({"type": "scan_shard", "dataset_id": 10002}), context)
    assert answer == {"batchItemFailures": []} and context.checks == 2
    assert world.ledger() == {}  # the budget ran out before the last prefix
    body = json.loads(sqs.receive_message(QueueUrl=work_url)["Messages"][0]["Body"])
    assert body["dataset_id"] == 10002 and body["resume_after"].endswith("/Annotations/")
    counter = RequestCounter.attach(runtime.reconciler.storage.client)
    handlers.handle_work(sqs_event(body), LocalContext())
    assert world.ledger() == {world.ids[last]: "quarantined"}
    # resumed: the prefix already listed is not listed again (2 listings; 5 LISTs with a delimiter, one per folder
    # level from the root down, rule out a spelling twin of the prefix that lacks a key)
    assert counter.counts["ListObjectsV2"] == 2 + 5
    runtime.engine.dispose()


def test_time_budget_running_out_in_a_purge_stops_between_batches(
    world: World, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    runtime = world.runtime(monkeypatch)
    runtime.reconciler.context = dataclasses.replace(runtime.reconciler.context, purge_batch_size=2)
    keys = world.portal.metadata_keys[:4]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys, at=world.clock()))
    world.clock.advance(hours=2)
    answer = handlers.handle_schedule({"action": "purge"}, ShortContext())
    assert answer["purge"]["deleted"] == 2  # one batch, committed whole, then a clean stop
    assert sorted(world.ledger().values()) == ["purged", "purged", "quarantined", "quarantined"]
    assert world.orphans() == 0
    assert handlers.handle_schedule({"action": "purge"}, LocalContext())["purge"]["deleted"] == 2
    assert world.annotation_ids() == set(world.ids.values()) - {world.ids[k] for k in keys}
    runtime.engine.dispose()


# --- poisoned messages -----------------------------------------------------------------------------


POISON = {
    "events": '{"Records": [{"eventSource": "aws:s3", "truncated',
    "work": '{"type": "scan_shard", "dataset_id": "10001"}',
}


@pytest.mark.parametrize("queue", ["events", "work"])
def test_poisoned_message_fails_alone_and_reaches_the_dlq_after_its_retries(
    world: World, monkeypatch: pytest.MonkeyPatch, db_url: str, queue: str
) -> None:
    sqs = boto3.client("sqs", region_name="us-west-2")
    dlq = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=queue,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
    )["QueueUrl"]
    runtime = world.runtime(monkeypatch)
    good = world.portal.metadata_keys[0]
    world.delete(good)
    sqs.send_message(QueueUrl=url, MessageBody=POISON[queue])
    INJECTED[f"poisoned messages on the {queue} queue"] += 1
    healthy = s3_notification(BUCKET, good) if queue == "events" else {"type": "scan_shard", "dataset_id": 10001}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(healthy))
    handler = handlers.handle_events if queue == "events" else handlers.handle_work
    # a visibility timeout of 0: a failed message is visible again at once, as after Lambda's visibility timeout
    # (a second of it per receive, slept, was most of the test's time)
    mapping = LocalLambdaRuntime(sqs, url, handler, wait_seconds=0, visibility_timeout=0)
    for _ in range(5):
        mapping.poll_once()
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == [POISON[queue]]
    assert not sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages")
    assert world.ledger() == {world.ids[good]: "quarantined"}
    runtime.engine.dispose()
