"""The reconciler's stack: queues, the three Lambdas, schedules, least-privilege IAM and alarms."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagSuppressions
from constructs import Construct

from infra.bundling import lambda_code
from infra.config import StackConfig

NAMESPACE = "AnnotationReconciler"
SERVICE = "annotation-reconciler"
EVENTS_TIMEOUT = Duration.minutes(2)
LONG_TIMEOUT = Duration.minutes(15)


class ReconcilerStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        prefix = config.key_prefix
        self.bucket = self._bucket()
        self.secret = (
            secretsmanager.Secret.from_secret_complete_arn(self, "PortalDbSecret", config.db_secret)
            if config.db_secret.startswith("arn:")
            else secretsmanager.Secret.from_secret_name_v2(self, "PortalDbSecret", config.db_secret)
        )
        self.events_dlq = self._queue("EventsDlq", retention=Duration.days(14))
        self.events_queue = self._queue("EventsQueue", visibility=Duration.minutes(12), dlq=self.events_dlq)
        self.work_dlq = self._queue("WorkDlq", retention=Duration.days(14))
        self.work_queue = self._queue("WorkQueue", visibility=Duration.minutes(16), dlq=self.work_dlq)

        if config.owned_bucket:
            for kind in (s3.EventType.OBJECT_REMOVED, s3.EventType.OBJECT_CREATED):
                self.bucket.add_event_notification(
                    kind, s3n.SqsDestination(self.events_queue), s3.NotificationKeyFilter(prefix=prefix or None)
                )
        else:
            object_filter: dict[str, Any] = {"key": [{"prefix": prefix}]} if prefix else {}
            self.object_rule = events.Rule(
                self,
                "ObjectChanges",
                description="S3 Object Deleted / Object Created events of the portal bucket (EventBridge must be on)",
                event_pattern=events.EventPattern(
                    source=["aws.s3"],
                    detail_type=["Object Deleted", "Object Created"],
                    detail={"bucket": {"name": [config.bucket_name]}, **({"object": object_filter} if prefix else {})},
                ),
                targets=[targets.SqsQueue(self.events_queue)],
            )

        code = lambda_code()
        network = self._network()
        env = self._environment()
        self.events_fn = self._function("EventsFunction", "handle_events", code, env, network, EVENTS_TIMEOUT)
        self.work_fn = self._function("WorkFunction", "handle_work", code, env, network, LONG_TIMEOUT)
        self.schedule_fn = self._function("ScheduleFunction", "handle_schedule", code, env, network, LONG_TIMEOUT)

        self.events_fn.add_event_source(
            sources.SqsEventSource(
                self.events_queue,
                batch_size=config.events_batch_size,
                max_batching_window=Duration.seconds(config.events_batching_window_s),
                report_batch_item_failures=True,
                max_concurrency=config.events_max_concurrency,
            )
        )
        self.work_fn.add_event_source(
            sources.SqsEventSource(
                self.work_queue,
                batch_size=1,
                report_batch_item_failures=True,
                max_concurrency=config.work_max_concurrency,
            )
        )
        for name, rate, action in (
            ("PurgeSchedule", config.purge_schedule, "purge"),
            ("ReconcileSchedule", config.reconcile_schedule, "reconcile"),
        ):
            events.Rule(
                self,
                name,
                schedule=events.Schedule.expression(rate),
                targets=[
                    targets.LambdaFunction(
                        self.schedule_fn, event=events.RuleTargetInput.from_object({"action": action}), retry_attempts=2
                    )
                ],
            )

        for fn in (self.events_fn, self.work_fn, self.schedule_fn):
            self.secret.grant_read(fn)
        for fn in (self.work_fn, self.schedule_fn):
            self._grant_bucket_read(fn, config.bucket_name, prefix)
            self.work_queue.grant_send_messages(fn)
        if config.inventory_manifest:
            bucket, _, key = config.inventory_manifest[len("s3://") :].partition("/")
            self._grant_bucket_read(self.schedule_fn, bucket, key)
        self._alarms()
        self._suppressions()
        cdk.CfnOutput(self, "EventsQueueUrl", value=self.events_queue.queue_url)
        cdk.CfnOutput(self, "WorkQueueUrl", value=self.work_queue.queue_url)

    # --- parts ---------------------------------------------------------------------------

    def _bucket(self) -> s3.IBucket:
        if self.config.owned_bucket:
            return s3.Bucket(
                self,
                "Bucket",
                bucket_name=self.config.bucket_name,
                enforce_ssl=True,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                encryption=s3.BucketEncryption.S3_MANAGED,
                versioned=True,
                removal_policy=cdk.RemovalPolicy.RETAIN,
            )
        return s3.Bucket.from_bucket_name(self, "PortalBucket", self.config.bucket_name)

    def _queue(
        self,
        name: str,
        *,
        retention: Duration | None = None,
        visibility: Duration | None = None,
        dlq: sqs.IQueue | None = None,
    ) -> sqs.Queue:
        return sqs.Queue(
            self,
            name,
            retention_period=retention,
            visibility_timeout=visibility,
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5) if dlq else None,
        )

    def _network(self) -> dict[str, Any]:
        c = self.config
        if not c.vpc_id:
            return {}
        vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "PortalVpc",
            vpc_id=c.vpc_id,
            availability_zones=list(c.availability_zones),
            private_subnet_ids=list(c.subnet_ids),
        )
        group = ec2.SecurityGroup.from_security_group_id(self, "PortalDbAccess", c.security_group_id or "")
        return {"vpc": vpc, "security_groups": [group], "vpc_subnets": ec2.SubnetSelection(subnets=vpc.private_subnets)}

    def _environment(self) -> dict[str, str]:
        c = self.config
        env = {
            "RECONCILER_DB_SECRET_ARN": self.secret.secret_arn,
            "RECONCILER_BUCKET": c.bucket_name,
            "RECONCILER_S3_PREFIX": c.stored_path_prefix,
            "RECONCILER_DRY_RUN": "true" if c.dry_run else "false",
            "RECONCILER_GRACE_PERIOD_HOURS": f"{c.grace_period_hours:g}",
            "RECONCILER_MAX_PURGE_FRACTION": f"{c.max_purge_fraction:g}",
            "RECONCILER_WORK_QUEUE_URL": self.work_queue.queue_url,
            "POWERTOOLS_SERVICE_NAME": SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        if c.inventory_manifest:
            env["RECONCILER_INVENTORY_MANIFEST"] = c.inventory_manifest
        return {k: v for k, v in env.items() if v != ""}

    def _function(
        self,
        name: str,
        handler: str,
        code: lambda_.Code,
        env: dict[str, str],
        network: dict[str, Any],
        timeout: Duration,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            retention=_retention(self.config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        return lambda_.Function(
            self,
            name,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,
            handler=f"annotation_reconciler.handlers.{handler}",
            code=code,
            timeout=timeout,
            memory_size=512,
            environment=env,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            **network,
        )

    def _grant_bucket_read(self, fn: lambda_.Function, bucket: str, prefix: str) -> None:
        """ListBucket on the bucket (only under the prefix) and GetObject under the prefix; nothing else on S3."""
        arn = f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}"
        list_statement = iam.PolicyStatement(actions=["s3:ListBucket"], resources=[arn])
        if prefix:
            list_statement.add_condition("StringLike", {"s3:prefix": [f"{prefix}*"]})
        fn.add_to_role_policy(list_statement)
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{arn}/{prefix}*"]))

    def _alarms(self) -> None:
        topic = None
        if self.config.alarm_email:
            topic = sns.Topic(self, "AlarmTopic", enforce_ssl=True, display_name="annotation-reconciler alarms")
            topic.add_subscription(subscriptions.EmailSubscription(self.config.alarm_email))
        alarms = [
            cloudwatch.Alarm(
                self,
                f"{name}Depth",
                metric=q.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                alarm_description=f"messages in {name}: events or shards failed repeatedly",
            )
            for name, q in (("EventsDlq", self.events_dlq), ("WorkDlq", self.work_dlq))
        ]
        alarms += [
            cloudwatch.Alarm(
                self,
                f"{name}Errors",
                metric=fn.metric_errors(period=Duration.minutes(5)),
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                alarm_description=f"{name} failed",
            )
            for name, fn in (("Events", self.events_fn), ("Work", self.work_fn), ("Schedule", self.schedule_fn))
        ]
        held = cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name="PurgeHeld",
            dimensions_map={"service": SERVICE},
            statistic="Sum",
            period=Duration.hours(1),
        )
        alarms.append(
            cloudwatch.Alarm(
                self,
                "MassDeletionGuard",
                metric=held,
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description="the mass-deletion guard held annotations: check them, then run "
                "`annotation-reconciler approve`",
            )
        )
        if topic:
            for alarm in alarms:
                alarm.add_alarm_action(cw_actions.SnsAction(topic))

    def _suppressions(self) -> None:
        NagSuppressions.add_stack_suppressions(
            self,
            [
                {
                    "id": "AwsSolutions-IAM4",
                    "reason": "AWSLambdaBasicExecutionRole / AWSLambdaVPCAccessExecutionRole are "
                    "the scoped AWS policies for writing logs and attaching ENIs; nothing else is managed.",
                },
                {
                    "id": "AwsSolutions-IAM5",
                    "reason": "Wildcards are object keys under the configured prefix "
                    "(s3:GetObject on bucket/prefix*), X-Ray's PutTraceSegments (no resource-level permissions) and "
                    "the ENI actions Lambda needs in a VPC.",
                },
                {
                    "id": "AwsSolutions-L1",
                    "reason": "Pinned to python3.12, the runtime the package and its bundled "
                    "wheels are built and tested for; upgraded deliberately, not by default.",
                },
                {"id": "AwsSolutions-SQS3", "reason": "The two DLQs are dead-letter queues themselves."},
                {
                    "id": "AwsSolutions-SNS2",
                    "reason": "Alarm notifications carry no data; SSE would need a CMK policy "
                    "for CloudWatch, which the optional topic does not warrant.",
                },
            ],
        )


RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def _retention(days: int) -> logs.RetentionDays:
    if days not in RETENTION:
        raise ValueError(f"log_retention_days={days} must be one of {sorted(RETENTION)}")
    return RETENTION[days]
