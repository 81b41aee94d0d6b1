"""Lambda entry points: parse, call one service operation, turn the result into metrics and logs.

- ``handle_events`` (:mod:`.events`): S3 object events (through SQS, or direct S3 / EventBridge invocations).
- ``handle_schedule`` (:mod:`.schedule`): the EventBridge schedule: purge, and fan out the full reconciliation
  (``migrate`` is the portal owner's, from the CLI: the Lambdas' role may create nothing); ``status``, ``approve``
  and ``release`` (:mod:`.operator`) let an operator act without a database client.
- ``handle_work`` (:mod:`.work`): the work queue: one full-reconciliation shard per message (a LIST shard, or a
  slice of S3 Inventory candidates to confirm).

The CDK stack names them ``annotation_reconciler.handlers.handle_*``. They share one Logger and one Metrics
(:mod:`.common`); the runtime they use comes from ``common.runtime_factory``, the one place to replace it.

Lambda's active tracing records each invocation; the bundle carries no X-Ray SDK (it would bring
a second botocore), so there is no powertools Tracer here.
"""

from annotation_reconciler.handlers.common import logger, metrics
from annotation_reconciler.handlers.events import handle_events
from annotation_reconciler.handlers.schedule import handle_schedule
from annotation_reconciler.handlers.work import handle_work
from annotation_reconciler.names import SERVICE

__all__ = ["SERVICE", "handle_events", "handle_schedule", "handle_work", "logger", "metrics"]
