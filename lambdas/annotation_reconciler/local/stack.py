"""The local stand-in for the deployed stack: queues, bucket notifications, handlers on a local runtime.

Used by ``make demo`` and ``annotation-reconciler local``; everything talks to an S3/SQS endpoint
(moto, or any compatible server) and a PostgreSQL database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from annotation_reconciler import handlers
from annotation_reconciler.aws import make_client
from annotation_reconciler.local.lambda_runtime import LocalLambdaRuntime, wire_bucket_to_queue
from annotation_reconciler.names import SERVICE, Env, Powertools
from annotation_reconciler.service.runtime import Runtime, build_runtime

QUIET_POWERTOOLS = {
    Powertools.LOG_LEVEL: "CRITICAL",
    Powertools.METRICS_DISABLED: "true",
    Powertools.TRACE_DISABLED: "true",
    Powertools.SERVICE_NAME: SERVICE,
}


@dataclass
class LocalStack:
    """Queues wired to a bucket, and local runtimes that feed them to the real handlers."""

    env: dict[str, str]
    s3: Any
    sqs: Any
    events: LocalLambdaRuntime
    work: LocalLambdaRuntime
    runtime: Runtime

    @classmethod
    def create(
        cls,
        *,
        db_url: str,
        endpoint_url: str,
        bucket: str,
        settings: Mapping[str, str] | None = None,
        event_batch_size: int = 10,
    ) -> LocalStack:
        os.environ.update(QUIET_POWERTOOLS)
        handlers.logger.setLevel(os.environ[Powertools.LOG_LEVEL])  # the logger read its level at import
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
        s3 = make_client("s3", endpoint_url=endpoint_url, region="us-west-2")
        sqs = make_client("sqs", endpoint_url=endpoint_url, region="us-west-2")
        events_url = wire_bucket_to_queue(s3, sqs, bucket, "annotation-reconciler-events")
        work_url = sqs.create_queue(QueueName="annotation-reconciler-work")["QueueUrl"]
        env = {
            Env.DB_URL: db_url,
            Env.BUCKET: bucket,
            Env.WORK_QUEUE_URL: work_url,
            Env.DRY_RUN: "true",
            **(settings or {}),
        }
        stack = cls(
            env,
            s3,
            sqs,
            LocalLambdaRuntime(sqs, events_url, handlers.handle_events, batch_size=event_batch_size),
            LocalLambdaRuntime(sqs, work_url, handlers.handle_work, batch_size=1),
            cls._runtime(env),
        )
        stack.use()
        return stack

    @staticmethod
    def _runtime(env: Mapping[str, str]) -> Runtime:
        return build_runtime({**os.environ, **env})

    def use(self) -> None:
        """Point the handlers at this stack's settings (Lambda would read its environment)."""
        runtime = self.runtime
        handlers.common.runtime_factory = lambda: runtime

    def configure(self, **settings: str) -> None:
        """Change settings (as an operator would redeploy with new environment values)."""
        self.env.update(settings)
        self.runtime = self._runtime(self.env)
        self.use()

    def schedule(self, action: str) -> Any:
        from annotation_reconciler.local.lambda_runtime import LocalContext

        return handlers.handle_schedule(
            {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {"action": action}}, LocalContext()
        )
