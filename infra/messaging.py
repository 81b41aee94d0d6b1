"""Where changes arrive: the portal bucket (created only in sandboxes), the events and work queues, their
dead-letter queues, EventBridge's two dead-letter queues and the ``ObjectChanges`` rule.

Every resource is created directly in the stack's scope (``stack`` is the ``cdk.Stack``, never a new
``Construct`` child): a construct in between would change every logical ID, and CloudFormation would replace
the queues of a running deployment (and lose their messages).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from infra.config import StackConfig

EVENTS_TIMEOUT = Duration.minutes(2)
#: Shards carry a time budget and queue their own continuation, so a short timeout loses nothing.
WORK_TIMEOUT = Duration.minutes(5)
#: AWS asks for a source queue's visibility timeout of at least six times the function's timeout.
VISIBILITY_FACTOR = 6
DLQ_RETENTION = Duration.days(14)


def annotation_key_patterns(prefix: str) -> list[str]:
    """EventBridge wildcards for the keys ``paths.classify_key`` acts on: anything inside an
    ``Annotations/`` folder (at the root of the prefix or below it)."""
    escaped = prefix.replace("\\", "\\\\").replace("*", "\\*")
    return [f"{escaped}Annotations/*", f"{escaped}*/Annotations/*"]


def visibility_for(timeout: Duration, batching_window: Duration | None = None) -> Duration:
    """The visibility timeout of a queue feeding a function: 6x its timeout plus the batching window."""
    window = batching_window.to_seconds() if batching_window else 0
    return Duration.seconds(VISIBILITY_FACTOR * timeout.to_seconds() + window)


@dataclass(frozen=True)
class Messaging:
    """The bucket, the queues and the rule that feeds the events queue (all in the stack's own scope)."""

    bucket: s3.IBucket
    events_dlq: sqs.Queue
    events_queue: sqs.Queue
    work_dlq: sqs.Queue
    work_queue: sqs.Queue
    object_rule_dlq: sqs.Queue  # object events EventBridge could not deliver (redrivable into the events queue)
    schedule_dlq: sqs.Queue  # schedule runs EventBridge could not deliver
    object_rule: events.Rule
    batching_window: Duration  # the events queue's batching window (its mapping waits as long)

    @property
    def dead_letter_queues(self) -> dict[str, sqs.Queue]:
        """The four dead-letter queues by logical ID."""
        return {
            "EventsDlq": self.events_dlq,
            "WorkDlq": self.work_dlq,
            "ObjectRuleDlq": self.object_rule_dlq,
            "ScheduleDlq": self.schedule_dlq,
        }


def add_messaging(stack: cdk.Stack, config: StackConfig) -> Messaging:
    """Create the bucket (if owned), the queues and the ``ObjectChanges`` rule in ``stack``."""
    bucket = _bucket(stack, config)
    window = Duration.seconds(config.events_batching_window_s)
    events_dlq = _queue(stack, "EventsDlq", retention=DLQ_RETENTION)
    events_queue = _queue(stack, "EventsQueue", visibility=visibility_for(EVENTS_TIMEOUT, window), dlq=events_dlq)
    work_dlq = _queue(stack, "WorkDlq", retention=DLQ_RETENTION)
    work_queue = _queue(stack, "WorkQueue", visibility=visibility_for(WORK_TIMEOUT), dlq=work_dlq)
    object_rule_dlq = _queue(stack, "ObjectRuleDlq", retention=DLQ_RETENTION)
    schedule_dlq = _queue(stack, "ScheduleDlq", retention=DLQ_RETENTION)
    object_rule = events.Rule(
        stack,
        "ObjectChanges",
        description="S3 Object Deleted / Object Created events under Annotations/ folders of the portal bucket "
        "(the bucket must send its events to EventBridge)",
        event_pattern=events.EventPattern(
            source=["aws.s3"],
            detail_type=["Object Deleted", "Object Created"],
            detail={
                "bucket": {"name": [config.bucket_name]},
                "object": {"key": [{"wildcard": p} for p in annotation_key_patterns(config.key_prefix)]},
            },
        ),
        targets=[targets.SqsQueue(events_queue, dead_letter_queue=object_rule_dlq)],
    )
    return Messaging(
        bucket=bucket,
        events_dlq=events_dlq,
        events_queue=events_queue,
        work_dlq=work_dlq,
        work_queue=work_queue,
        object_rule_dlq=object_rule_dlq,
        schedule_dlq=schedule_dlq,
        object_rule=object_rule,
        batching_window=window,
    )


def _bucket(stack: cdk.Stack, config: StackConfig) -> s3.IBucket:
    if not config.owned_bucket:
        return s3.Bucket.from_bucket_name(stack, "PortalBucket", config.bucket_name)
    bucket = s3.Bucket(
        stack,
        "Bucket",
        bucket_name=config.bucket_name,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        versioned=True,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    # Events go to EventBridge, whose rule filters keys to Annotations/ folders (S3's own
    # notification filters only know one prefix and one suffix). Set on the bucket itself:
    # no custom resource, no extra Lambda.
    resource = bucket.node.default_child
    assert isinstance(resource, s3.CfnBucket)
    resource.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)
    return bucket


def _queue(
    stack: cdk.Stack,
    name: str,
    *,
    retention: Duration | None = None,
    visibility: Duration | None = None,
    dlq: sqs.IQueue | None = None,
) -> sqs.Queue:
    return sqs.Queue(
        stack,
        name,
        retention_period=retention,
        visibility_timeout=visibility,
        enforce_ssl=True,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5) if dlq else None,
    )
