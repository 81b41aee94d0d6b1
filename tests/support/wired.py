"""A world wired as deployed: the handlers' runtime on the world's clock, a work queue (moto SQS), the inventory
bucket, and the metrics the handlers emit counted instead of sent."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from annotation_reconciler import handlers
from annotation_reconciler.local.lambda_runtime import LocalLambdaRuntime
from annotation_reconciler.service.runtime import Runtime
from support.inventory import INVENTORY_BUCKET
from support.world import World

#: Powertools without metrics output or log lines below CRITICAL: the tests read counters and ledgers.
QUIET = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "CRITICAL"}


@dataclass
class Wired:
    world: World
    sqs: Any
    work_url: str
    runtime: Runtime
    metrics: Counter[str] = field(default_factory=Counter)

    def work(self) -> LocalLambdaRuntime:
        """The work Lambda, one message per invocation, as the stack's event source mapping runs it."""
        return LocalLambdaRuntime(self.sqs, self.work_url, handlers.handle_work, batch_size=1, wait_seconds=0)

    def queued(self) -> list[dict[str, Any]]:
        """Take every visible message off the work queue, in the order sent."""
        bodies: list[dict[str, Any]] = []
        while got := self.sqs.receive_message(QueueUrl=self.work_url, MaxNumberOfMessages=10).get("Messages", []):
            for m in got:
                bodies.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.work_url, ReceiptHandle=m["ReceiptHandle"])
        return bodies

    def peek(self) -> list[dict[str, Any]]:
        """The first visible messages (up to 10), left on the queue for the work Lambda."""
        got = self.sqs.receive_message(QueueUrl=self.work_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in QUIET.items():
        monkeypatch.setenv(k, v)


def wire(world: World, monkeypatch: pytest.MonkeyPatch, **env: str) -> Wired:
    """The handlers on ``world`` with a work queue and ``env`` over the world's environment; dispose of
    ``wired.runtime.engine`` when done."""
    quiet(monkeypatch)
    world.s3.create_bucket(Bucket=INVENTORY_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    sqs = boto3.client("sqs", region_name="us-west-2")
    work_url = sqs.create_queue(QueueName="work")["QueueUrl"]
    runtime = world.runtime(monkeypatch, RECONCILER_WORK_QUEUE_URL=work_url, **env)
    wired = Wired(world, sqs, work_url, runtime)
    monkeypatch.setattr(handlers.metrics, "add_metric", lambda name, unit, value: wired.metrics.update({name: value}))
    return wired
