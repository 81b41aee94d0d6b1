"""What the three Lambda entry points share: the one powertools Logger and Metrics, the runtime they get,
the time left, counters, and the work queue's sender.

:data:`runtime_factory` is the one hook for the local runtime and tests (Lambda uses the cached runtime):
the entry points call :func:`runtime`, which reads it at each invocation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from annotation_reconciler.names import NAMESPACE, SERVICE
from annotation_reconciler.service.runtime import Runtime, cached_runtime

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

#: Hooks for the local runtime and tests; Lambda uses the cached runtime.
runtime_factory: Callable[[], Runtime] = cached_runtime


def runtime() -> Runtime:
    """The runtime of this invocation, from :data:`runtime_factory` as it is now."""
    return runtime_factory()


def remaining(context: Any) -> Callable[[], float] | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: getter() / 1000.0) if callable(getter) else None


def count(name: str, value: float) -> None:
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def send_shards(rt: Runtime, bodies: list[dict[str, Any]], *, delay_seconds: int = 0) -> int:
    queue = rt.settings.work_queue_url
    assert queue is not None
    sent = 0
    for i in range(0, len(bodies), 10):
        chunk = bodies[i : i + 10]
        entries: list[Any] = [
            {"Id": str(n), "MessageBody": json.dumps(body), "DelaySeconds": delay_seconds}
            for n, body in enumerate(chunk)
        ]
        response = rt.sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"could not queue {len(response['Failed'])} shard messages: {response['Failed']}")
        sent += len(chunk)
    return sent
