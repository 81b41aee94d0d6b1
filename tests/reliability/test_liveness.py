"""Liveness: every deletion is found within one reconciliation period, whatever fails (issue 18).

Metadata objects are deleted at T with their events lost, duplicated or reordered behind an older re-upload,
while one ``Annotations/`` prefix cannot be listed, S3 answers slowly and throttles, and the S3 Inventory
configuration stopped delivering three days ago (its last report still lists every key). One period (the events
Lambda, then the schedule and the work queue until it is empty) must quarantine every deletion S3 lets the
reconciler see, refuse the old inventory (InventoryStale) and list instead, and report the prefix it cannot see
(the PrefixesBlind metric, `status`). Real PostgreSQL, moto.
Prints its figure (the line in RELIABILITY.md) with ``-s``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from collections import Counter
from typing import Any

import boto3
import pytest
from sqlalchemy import Engine, text

from annotation_reconciler import handlers
from annotation_reconciler.local.lambda_runtime import LocalContext, LocalLambdaRuntime
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules import prefix_retry
from annotation_reconciler.rules.listings import metadata_folder
from annotation_reconciler.service.runtime import build_runtime
from support.faults import inject, inject_at, record_backoff
from support.inventory import INVENTORY_BUCKET, MANIFEST, report
from support.world import BUCKET, make_world, s3_notification, sqs_event

S3_DELAY_S = 0.03  # every S3 request answers this much later
THROTTLED = 6  # LISTs answered 503 SlowDown first (botocore retries them)


def _note(key: str, name: str, when: datetime.datetime, sequencer: str) -> dict[str, Any]:
    return s3_notification(BUCKET, key, name, when.isoformat().replace("+00:00", "Z"), sequencer)


def test_every_deletion_is_quarantined_within_one_period_and_the_blind_prefix_is_reported(
    engine: Engine, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "CRITICAL"}.items():
        monkeypatch.setenv(k, v)
    world = make_world(engine, s3, db_url, PortalSpec(datasets=2, runs_per_dataset=6, annotations_per_voxel_spacing=3))
    sqs = boto3.client("sqs", region_name="us-west-2")
    work_url = sqs.create_queue(QueueName="work")["QueueUrl"]
    runtime = build_runtime(
        {
            **os.environ,
            "RECONCILER_DB_URL": db_url,
            "RECONCILER_BUCKET": BUCKET,
            "RECONCILER_DRY_RUN": "false",
            "RECONCILER_GRACE_PERIOD_HOURS": "24",
            "RECONCILER_WORK_QUEUE_URL": work_url,
            "RECONCILER_INVENTORY_MANIFEST": MANIFEST,
        }
    )
    runtime.reconciler.context = dataclasses.replace(runtime.reconciler.context, clock=world.clock)
    monkeypatch.setattr(handlers.common, "runtime_factory", lambda: runtime)
    metrics: Counter[str] = Counter()
    monkeypatch.setattr(handlers.metrics, "add_metric", lambda name, unit, value: metrics.update({name: value}))
    monkeypatch.setattr(prefix_retry, "RETRY_DELAY_S", 0)  # the retries' wait on the queue, not this test's
    record_backoff(monkeypatch)

    # one deletion in every Annotations/ folder (never a whole folder), split by what happens to its event
    by_folder: dict[str, list[str]] = {}
    for key in world.portal.metadata_keys:
        by_folder.setdefault(metadata_folder(key), []).append(key)
    folders = sorted(by_folder)
    blind_folder = folders[4]
    deleted = [sorted(by_folder[f])[1] for f in folders]
    hidden = sorted(by_folder[blind_folder])[1]  # in the prefix S3 will not list: its event is lost too
    seen = [k for k in deleted if k != hidden]
    lost, duplicated, reordered = seen[0::3], seen[1::3], seen[2::3]
    t = world.clock.now
    # the inventory's last delivery, three days before T: it still lists every key (it would hide every deletion)
    s3.create_bucket(Bucket=INVENTORY_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    report(s3, world.portal.all_keys(), created=t - datetime.timedelta(days=3))
    world.delete(*deleted)

    client = runtime.reconciler.storage.client
    client.meta.events.register("before-send.s3", lambda **_: time.sleep(S3_DELAY_S))
    inject_at(client, "ListObjectsV2", blind_folder)
    throttle = inject(client, "ListObjectsV2", THROTTLED)
    started = time.monotonic()

    # the events Lambda: lost events never come; duplicates twice; a re-upload's Created (older than the
    # deletion) delivered after the Removed, in a later batch
    removed = {k: _note(k, "ObjectRemoved:Delete", t, "0B") for k in deleted}
    older = {k: _note(k, "ObjectCreated:Put", t - datetime.timedelta(minutes=1), "0A") for k in reordered}
    batches = [
        sqs_event(*(removed[k] for k in duplicated + reordered)),
        sqs_event(*(older[k] for k in reordered), *(removed[k] for k in duplicated)),
    ]
    for batch in batches:
        assert handlers.handle_events(batch, LocalContext()) == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[k]: "quarantined" for k in duplicated + reordered}

    # one period: the schedule fans out, the work queue runs until it is empty (retries included)
    world.clock.advance(hours=1)
    answer = handlers.handle_schedule({"action": "reconcile"}, LocalContext())
    outcomes = LocalLambdaRuntime(sqs, work_url, handlers.handle_work, batch_size=1, wait_seconds=0).drain()
    elapsed = time.monotonic() - started

    assert sum(o.failed for o in outcomes) == 0
    assert world.ledger() == {world.ids[k]: "quarantined" for k in seen}  # every visible deletion, nothing else
    assert metrics["PrefixesBlind"] == 1  # and the one part the scan cannot see is reported
    assert metrics["InventoryStale"] == 1 and "inventory" not in answer  # the old report refused: LISTs instead
    with engine.connect() as conn:
        blind = (
            conn.execute(text("SELECT prefix FROM annotation_reconciler.blind_prefix WHERE resolved_at IS NULL"))
            .scalars()
            .all()
        )
    assert blind == [blind_folder]
    assert throttle.injected == THROTTLED
    assert elapsed < 60
    print(
        f"\nliveness: {len(seen)} deletions seen by S3 ({len(lost)} events lost, {len(duplicated)} duplicated, "
        f"{len(reordered)} behind an older Created), {len(folders)} prefixes, 1 unlistable, {THROTTLED} LISTs "
        f"throttled, {S3_DELAY_S * 1000:.0f} ms per S3 request, a 3-day-old inventory: "
        f"{len(seen)}/{len(seen)} quarantined in one period "
        f"({answer['shards_queued']} shards, {len(outcomes)} work messages incl. "
        f"{prefix_retry.MAX_PREFIX_RETRIES} retries of the bad prefix), the inventory refused as stale, "
        "the bad prefix reported blind; "
        f"{elapsed:.1f} s"
    )
