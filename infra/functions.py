"""The three Lambdas: their environment, secrets, log groups, roles, reserved concurrency, the SQS event source
mappings of the events and work functions, and the schedule rules that invoke the schedule function.

Every resource is created directly in the stack's scope (``stack`` is the ``cdk.Stack``, never a new
``Construct`` child): a construct in between would change every logical ID, and CloudFormation would replace
the functions, roles and log groups of a running deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager

from annotation_reconciler.names import NAMESPACE, SERVICE, Action, Env, Powertools
from infra import policies
from infra.bundling import CA_BUNDLE_NAME, lambda_code
from infra.config import SCHEDULE_CONCURRENCY, StackConfig
from infra.messaging import EVENTS_TIMEOUT, WORK_TIMEOUT, Messaging
from infra.network import Network

SCHEDULE_TIMEOUT = Duration.minutes(15)
SCHEDULE_RESERVED_CONCURRENCY = SCHEDULE_CONCURRENCY  # an hourly purge and the daily fan-out may overlap
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


@dataclass(frozen=True)
class DatabaseSecret:
    """A secret imported by name or ARN, with the value it was configured with (its policy resource)."""

    secret: secretsmanager.ISecret
    configured: str


@dataclass(frozen=True)
class Secrets:
    portal: DatabaseSecret
    events: DatabaseSecret  # the events function's own (a role without DELETE), else the portal's


def add_secrets(stack: cdk.Stack, config: StackConfig) -> Secrets:
    """Import the database secrets (no resource is created)."""
    portal = _secret(stack, "PortalDbSecret", config.db_secret)
    if not config.events_db_secret:
        return Secrets(portal=portal, events=portal)
    return Secrets(portal=portal, events=_secret(stack, "EventsDbSecret", config.events_db_secret))


@dataclass(frozen=True)
class Lambdas:
    events_fn: lambda_.Function
    work_fn: lambda_.Function
    schedule_fn: lambda_.Function
    events_mapping: lambda_.EventSourceMapping
    work_mapping: lambda_.EventSourceMapping
    schedule_rules: dict[str, events.Rule]  # by logical ID: PurgeSchedule, ReconcileSchedule

    @property
    def by_name(self) -> dict[str, lambda_.Function]:
        """The functions by the short names of their alarms and widgets (Events, Work, Schedule)."""
        return {"Events": self.events_fn, "Work": self.work_fn, "Schedule": self.schedule_fn}


def add_functions(
    stack: cdk.Stack, config: StackConfig, *, secrets: Secrets, messaging: Messaging, network: Network
) -> Lambdas:
    """Create the three functions, their event sources and the schedule rules in ``stack``."""
    maker = _FunctionMaker(stack, config, secrets.portal, network, messaging.work_queue.queue_url)
    portal_list = policies.list_statements(config.bucket_name, config.key_prefix, "ListPortalBucket")
    send_work = policies.send_work(messaging.work_queue)
    events_fn = maker.make(
        "EventsFunction",
        "handle_events",
        EVENTS_TIMEOUT,
        secret=secrets.events,
        statements=[policies.consume(messaging.events_queue)],
    )
    work_fn = maker.make(
        "WorkFunction",
        "handle_work",
        WORK_TIMEOUT,
        statements=[policies.consume(messaging.work_queue), send_work, *portal_list],
    )
    schedule_fn = maker.make(
        "ScheduleFunction",
        "handle_schedule",
        SCHEDULE_TIMEOUT,
        memory=1024,
        statements=[send_work, *portal_list, *policies.inventory_statements(config.inventory_manifest)],
        kms_via=("secretsmanager", "s3") if config.inventory_manifest else ("secretsmanager",),
    )
    if config.reserve_concurrency:
        for fn, reserved in (
            (events_fn, config.events_max_concurrency),
            (work_fn, config.work_max_concurrency),
            (schedule_fn, SCHEDULE_RESERVED_CONCURRENCY),
        ):
            fn_resource = fn.node.default_child
            assert isinstance(fn_resource, lambda_.CfnFunction)
            fn_resource.reserved_concurrent_executions = reserved

    # The mappings, not SqsEventSource: its grant adds rights the mapping never uses (GetQueueUrl,
    # ChangeMessageVisibility); the role's own statement (above) holds exactly what it calls.
    events_mapping = events_fn.add_event_source_mapping(
        "SqsSource",
        event_source_arn=messaging.events_queue.queue_arn,
        batch_size=config.events_batch_size,
        max_batching_window=messaging.batching_window,
        report_batch_item_failures=True,
        max_concurrency=config.events_max_concurrency,
    )
    work_mapping = work_fn.add_event_source_mapping(
        "SqsSource",
        event_source_arn=messaging.work_queue.queue_arn,
        batch_size=1,
        report_batch_item_failures=True,
        max_concurrency=config.work_max_concurrency,
    )
    schedule_rules = {
        name: events.Rule(
            stack,
            name,
            schedule=events.Schedule.expression(rate),
            targets=[
                targets.LambdaFunction(
                    schedule_fn,
                    event=events.RuleTargetInput.from_object({"action": action}),
                    retry_attempts=2,
                    dead_letter_queue=messaging.schedule_dlq,
                )
            ],
        )
        for name, rate, action in (
            ("PurgeSchedule", config.purge_schedule, Action.PURGE),
            ("ReconcileSchedule", config.reconcile_schedule, Action.RECONCILE),
        )
    }
    return Lambdas(events_fn, work_fn, schedule_fn, events_mapping, work_mapping, schedule_rules)


def environment(config: StackConfig, secret_arn: str, work_queue_url: str) -> dict[str, str]:
    """The functions' environment (the names are ``annotation_reconciler.names``'); empty values are left out."""
    c = config
    env = {
        Env.DB_SECRET_ARN: secret_arn,
        Env.BUCKET: c.bucket_name,
        Env.S3_PREFIX: c.stored_path_prefix,
        Env.DRY_RUN: "true" if c.dry_run else "false",
        Env.GRACE_PERIOD_HOURS: f"{c.grace_period_hours:g}",
        Env.MAX_PURGE_FRACTION: f"{c.max_purge_fraction:g}",
        Env.WORK_QUEUE_URL: work_queue_url,
        Powertools.SERVICE_NAME: SERVICE,
        Powertools.METRICS_NAMESPACE: NAMESPACE,
        Powertools.LOG_LEVEL: "INFO",
    }
    if c.inventory_manifest:
        env[Env.INVENTORY_MANIFEST] = c.inventory_manifest
    if c.bundles_ca:  # the database's certificate is verified against it (a private CA such as RDS's)
        env[Env.DB_CA_BUNDLE] = f"/var/task/{CA_BUNDLE_NAME}"
    return {k: v for k, v in env.items() if v != ""}


class _FunctionMaker:
    """One log group, one role and one function per call, sharing the code, environment and network."""

    def __init__(
        self, stack: cdk.Stack, config: StackConfig, portal: DatabaseSecret, network: Network, work_queue_url: str
    ) -> None:
        self.stack, self.config, self.portal, self.network = stack, config, portal, network
        self.code = lambda_code(config.ca_bundle_path if config.bundles_ca else None)
        self.env = environment(config, portal.secret.secret_arn, work_queue_url)

    def make(
        self,
        name: str,
        handler: str,
        timeout: Duration,
        *,
        memory: int = 512,
        secret: DatabaseSecret | None = None,
        statements: list[iam.PolicyStatement],
        kms_via: tuple[str, ...] = ("secretsmanager",),
    ) -> lambda_.Function:
        stack = self.stack
        log_group = logs.LogGroup(
            stack,
            f"{name}Logs",
            retention=_retention(self.config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        secret = secret or self.portal
        env = self.env if secret is self.portal else {**self.env, Env.DB_SECRET_ARN: secret.secret.secret_arn}
        role = iam.Role(
            stack,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"annotation-reconciler {name}: exactly the calls its code (and Lambda on its behalf) makes",
            inline_policies={
                "Execution": iam.PolicyDocument(
                    statements=policies.execution_statements(self.config, log_group, secret.configured, kms_via)
                    + statements
                )
            },
        )
        fn = lambda_.Function(
            stack,
            name,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"annotation_reconciler.handlers.{handler}",
            code=self.code,
            timeout=timeout,
            memory_size=memory,
            environment=env,
            role=role,
            # Lambda records each invocation's segment itself; the bundle has no X-Ray SDK, so the
            # functions send nothing to X-Ray from the VPC and need no X-Ray endpoint.
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            **self.network.function_props,
        )
        for endpoint in self.network.endpoints.values():
            fn.node.add_dependency(endpoint)  # no cold start before the endpoints exist
        return fn


def _secret(stack: cdk.Stack, name: str, secret: str) -> DatabaseSecret:
    if secret.startswith("arn:"):
        return DatabaseSecret(secretsmanager.Secret.from_secret_complete_arn(stack, name, secret), secret)
    return DatabaseSecret(secretsmanager.Secret.from_secret_name_v2(stack, name, secret), secret)


def _retention(days: int) -> logs.RetentionDays:
    if days not in RETENTION:
        raise ValueError(f"log_retention_days={days} must be one of {sorted(RETENTION)}")
    return RETENTION[days]
