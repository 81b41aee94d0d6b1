"""The Lambda handlers end to end on moto: real S3 notifications through SQS, the schedule and the work queue."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from sqlalchemy import Engine, text

from annotation_reconciler import handlers
from annotation_reconciler.local.lambda_runtime import LocalContext, LocalLambdaRuntime, wire_bucket_to_queue
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.service.runtime import build_runtime
from support.faults import break_changes_of
from support.world import BUCKET, World, make_world, use_runtime

POWERTOOLS_QUIET = {
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "CRITICAL",
}


@pytest.fixture
def wired(engine: Engine, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, Any]]:
    for k, v in POWERTOOLS_QUIET.items():
        monkeypatch.setenv(k, v)
    world = make_world(
        engine,
        s3,
        db_url,
        PortalSpec(datasets=2, runs_per_dataset=3, annotations_per_voxel_spacing=4, odd_run_names=True),
    )
    sqs = boto3.client("sqs", region_name="us-west-2")
    events_url = wire_bucket_to_queue(s3, sqs, BUCKET, "events")
    work_url = sqs.create_queue(QueueName="work")["QueueUrl"]
    runtime = world.runtime(monkeypatch, RECONCILER_WORK_QUEUE_URL=work_url)
    events = LocalLambdaRuntime(sqs, events_url, handlers.handle_events, batch_size=10, wait_seconds=0)
    events.drain()  # s3:TestEvent from configuring notifications
    yield world, {"sqs": sqs, "events": events, "work_url": work_url, "runtime": runtime}
    runtime.engine.dispose()


def test_real_notifications_quarantine_keys_with_spaces_plus_and_unicode(wired: tuple[World, Any]) -> None:
    world, parts = wired
    odd = [a for a in world.portal.annotations if a.run_name in ("TS 1+2 é", "TS_ü+plus")]
    assert len(odd) == 16
    world.delete(*(a.metadata_key for a in odd))
    outcomes = parts["events"].drain()
    assert sum(o.received for o in outcomes) == 16 and sum(o.failed for o in outcomes) == 0
    assert world.ledger() == {world.ids[a.metadata_key]: "quarantined" for a in odd}


def test_poisoned_message_fails_alone(wired: tuple[World, Any]) -> None:
    world, _ = wired
    key = world.portal.metadata_keys[0]
    world.delete(key)
    from support.world import s3_notification, sqs_event

    event = sqs_event(
        s3_notification(BUCKET, key),
        '{"Records": [{"truncated',
        {"Records": [{"eventSource": "aws:s3"}]},
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET},
    )
    answer = handlers.handle_events(event, LocalContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]}
    assert world.ledger() == {world.ids[key]: "quarantined"}


def test_a_message_that_breaks_the_database_step_fails_alone(
    wired: tuple[World, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, _parts = wired
    good, bad = world.portal.metadata_keys[0], world.portal.metadata_keys[1]
    world.delete(good, bad)
    from support.world import s3_notification, sqs_event

    break_changes_of(monkeypatch, bad)
    answer = handlers.handle_events(
        sqs_event(s3_notification(BUCKET, good), s3_notification(BUCKET, bad)), LocalContext()
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert world.ledger() == {world.ids[good]: "quarantined"}


def test_direct_eventbridge_and_s3_events(wired: tuple[World, Any]) -> None:
    world, _ = wired
    a, b = world.portal.metadata_keys[:2]
    world.delete(a, b)
    bridge = {
        "version": "0",
        "id": "same-id",
        "detail-type": "Object Deleted",
        "source": "aws.s3",
        "time": "2026-01-01T00:00:00Z",
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": a}, "deletion-type": "Permanently Deleted"},
    }
    assert handlers.handle_events(bridge, LocalContext())["quarantined"] == 1
    from support.world import s3_notification

    assert handlers.handle_events(s3_notification(BUCKET, b), LocalContext())["quarantined"] == 1
    with pytest.raises(ValueError, match=r"expected 'aws\.s3'"):
        handlers.handle_events({**bridge, "source": "aws.ec2"}, LocalContext())


def test_schedule_fans_out_shards_and_the_worker_reconciles(wired: tuple[World, Any]) -> None:
    world, parts = wired
    lost = world.portal.annotations[5]
    world.delete(lost.metadata_key)
    parts["sqs"].purge_queue(QueueUrl=parts["events"].queue_url)  # the event is lost
    answer = handlers.handle_schedule({"detail": {"action": "reconcile"}}, LocalContext())
    assert answer["shards_queued"] == 2
    work = LocalLambdaRuntime(parts["sqs"], parts["work_url"], handlers.handle_work, batch_size=1, wait_seconds=0)
    outcomes = work.drain()
    assert [o.received for o in outcomes] == [1, 1] and all(o.failed == 0 for o in outcomes)
    assert world.ledger() == {world.ids[lost.metadata_key]: "quarantined"}
    world.clock.advance(hours=2)
    answer = handlers.handle_schedule({"detail": {"action": "purge"}}, LocalContext())
    assert answer["purge"]["deleted"] == 1 and world.ids[lost.metadata_key] not in world.annotation_ids()


def test_worker_rejects_a_malformed_shard_message(wired: tuple[World, Any]) -> None:
    from support.world import sqs_event

    answer = handlers.handle_work(
        sqs_event({"type": "scan_shard", "dataset_id": "10001"}, {"type": "scan_shard", "dataset_id": 10001}),
        LocalContext(),
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}


def test_schedule_rejects_an_unknown_action(wired: tuple[World, Any]) -> None:
    with pytest.raises(ValueError, match="unknown schedule action 'purg'"):
        handlers.handle_schedule({"detail": {"action": "purg"}}, LocalContext())


@pytest.mark.parametrize("action", ["reconcile", "all"])
def test_schedule_refuses_a_reconciliation_without_a_work_queue(
    wired: tuple[World, Any], action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan cut short by Lambda's time limit could never resume without the queue: refuse, do nothing."""
    world, parts = wired
    world.delete(world.portal.metadata_keys[0])
    runtime = dataclasses.replace(
        parts["runtime"], settings=dataclasses.replace(parts["runtime"].settings, work_queue_url=None)
    )
    use_runtime(monkeypatch, runtime)
    with pytest.raises(ValueError, match="set RECONCILER_WORK_QUEUE_URL"):
        handlers.handle_schedule({"action": action}, LocalContext())
    assert world.ledger() == {}
    assert handlers.handle_schedule({"action": "purge"}, LocalContext())["purge"]["deleted"] == 0


def test_metrics_are_emitted(
    engine: Engine, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=1))
    runtime = build_runtime({**os.environ, "RECONCILER_DB_URL": db_url, "RECONCILER_BUCKET": BUCKET})
    use_runtime(monkeypatch, runtime)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    from support.world import s3_notification

    world.delete(world.portal.metadata_keys[0])
    handlers.metrics.clear_metrics()  # earlier tests ran with metrics disabled, which keeps them buffered
    handlers.handle_events(s3_notification(BUCKET, world.portal.metadata_keys[0]), LocalContext())
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf and emf[-1]["AnnotationsQuarantined"] == [1.0] and emf[-1]["EventsSeen"] == [1.0]
    runtime.engine.dispose()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM annotation_reconciler.annotation_quarantine")).scalar() == 1


def test_a_misspelled_variable_stops_every_lambda_before_it_decides_anything(
    engine: Engine, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Lambdas read their settings from the environment the stack gives them: a misspelled grace period there
    must not run on the default grace. Each handler refuses, naming the variable and the closest known one."""
    from annotation_reconciler.errors import SettingsError
    from support.world import s3_notification

    for k, v in POWERTOOLS_QUIET.items():
        monkeypatch.setenv(k, v)
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=1))
    world.delete(world.portal.metadata_keys[0])
    env = {"RECONCILER_DB_URL": db_url, "RECONCILER_BUCKET": BUCKET, "RECONCILER_GRACE_PERIOD": "1"}
    monkeypatch.setattr(handlers.common, "runtime_factory", lambda: build_runtime(env))
    calls = {
        "events": lambda: handlers.handle_events(
            s3_notification(BUCKET, world.portal.metadata_keys[0]), LocalContext()
        ),
        "schedule": lambda: handlers.handle_schedule({"action": "purge"}, LocalContext()),
        "work": lambda: handlers.handle_work({"Records": []}, LocalContext()),
    }
    for name, call in calls.items():
        with pytest.raises(SettingsError) as info:
            call()
        assert "RECONCILER_GRACE_PERIOD is not a setting of the reconciler (did you mean " in str(info.value), name
        assert "RECONCILER_GRACE_PERIOD_HOURS?)" in str(info.value), name
    assert world.ledger() == {}
