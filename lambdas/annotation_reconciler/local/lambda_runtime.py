"""A local Lambda runtime: long-poll an SQS queue and call a handler the way Lambda's event
source mapping does (batches, partial batch responses, delete only what succeeded), and fire
the schedule handler on a timer.

    runtime = LocalLambdaRuntime(sqs, queue_url, handlers.handle_events)
    runtime.drain()            # until the queue is empty
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalContext:
    """The parts of the Lambda context object the handlers use."""

    function_name: str = "annotation-reconciler-local"
    timeout_s: float = 900.0
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-west-2:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self.timeout_s - (time.monotonic() - self.started)) * 1000)


@dataclass
class PollResult:
    received: int = 0
    deleted: int = 0
    failed: int = 0
    result: Any = None


class LocalLambdaRuntime:
    """Feed an SQS queue to a handler in batches, like an SQS event source mapping."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        wait_seconds: int = 1,
        visibility_timeout: int = 2,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]

    def _receive(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        seen: set[str] = set()
        while len(messages) < self.batch_size:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=self.wait_seconds if not messages else 0,
                VisibilityTimeout=self.visibility_timeout,
                AttributeNames=["All"],
            ).get("Messages", [])
            fresh = [m for m in got if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update(m["MessageId"] for m in fresh)
            messages.extend(fresh)
        return messages

    def poll_once(self) -> PollResult:
        """Receive one batch, invoke the handler, delete the messages it did not report as failed."""
        messages = self._receive()
        outcome = PollResult(received=len(messages))
        if not messages:
            return outcome
        event = {"Records": [self._record(m) for m in messages]}
        try:
            outcome.result = self.handler(event, LocalContext())
            failed = {f["itemIdentifier"] for f in (outcome.result or {}).get("batchItemFailures", [])}
        except Exception:
            failed = {m["MessageId"] for m in messages}  # the whole batch returns to the queue
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[i : i + 10])]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        outcome.deleted, outcome.failed = len(done), len(failed)
        return outcome

    def drain(self, *, max_polls: int = 1000) -> list[PollResult]:
        """Poll until a receive comes back empty (failed messages reappear after their visibility timeout)."""
        outcomes = []
        for _ in range(max_polls):
            outcome = self.poll_once()
            if not outcome.received:
                break
            outcomes.append(outcome)
        return outcomes

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-west-2",
        }


class Timer:
    """Calls ``fn`` every ``period`` seconds when :meth:`tick` is called often enough."""

    def __init__(self, period: float, fn: Callable[[], Any]) -> None:
        self.period, self.fn = period, fn
        self.next_at = time.monotonic() + period

    def tick(self) -> Any:
        if time.monotonic() < self.next_at:
            return None
        self.next_at = time.monotonic() + self.period
        return self.fn()


def wire_bucket_to_queue(s3: Any, sqs: Any, bucket: str, queue_name: str) -> str:
    """Create a queue and send the bucket's ObjectCreated/ObjectRemoved notifications to it; returns its URL."""
    url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectRemoved:*", "s3:ObjectCreated:*"]}]
        },
    )
    return url
