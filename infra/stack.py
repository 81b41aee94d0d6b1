"""The reconciler's stack: network, queues, the three Lambdas, schedules, least-privilege IAM,
alarms that notify someone, and a dashboard."""

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
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from annotation_reconciler.names import NAMESPACE, SERVICE, Action, Env, Metric, Powertools
from infra.bundling import CA_BUNDLE_NAME, lambda_code
from infra.config import SCHEDULE_CONCURRENCY, StackConfig

EVENTS_TIMEOUT = Duration.minutes(2)
#: Shards carry a time budget and queue their own continuation, so a short timeout loses nothing.
WORK_TIMEOUT = Duration.minutes(5)
SCHEDULE_TIMEOUT = Duration.minutes(15)
#: AWS asks for a source queue's visibility timeout of at least six times the function's timeout.
VISIBILITY_FACTOR = 6
SCHEDULE_RESERVED_CONCURRENCY = SCHEDULE_CONCURRENCY  # an hourly purge and the daily fan-out may overlap
#: What Lambda's SQS event source calls with the function's role (AWSLambdaSQSQueueExecutionRole's actions).
SQS_CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
#: What Lambda calls with the function's role to attach it to the VPC (AWSLambdaENIManagementAccess's actions);
#: EC2 takes no narrower resource for the Describe calls, and Lambda checks them all on "*".
VPC_ENI = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]
#: Alarm when a function's longest run passes this share of its timeout.
DURATION_ALARM_SHARE = 0.8
EVENTS_QUEUE_AGE_ALARM = Duration.hours(1)
WORK_QUEUE_AGE_ALARM = Duration.hours(6)


def annotation_key_patterns(prefix: str) -> list[str]:
    """EventBridge wildcards for the keys ``paths.classify_key`` acts on: anything inside an
    ``Annotations/`` folder (at the root of the prefix or below it)."""
    escaped = prefix.replace("\\", "\\\\").replace("*", "\\*")
    return [f"{escaped}Annotations/*", f"{escaped}*/Annotations/*"]


def visibility_for(timeout: Duration, batching_window: Duration | None = None) -> Duration:
    """The visibility timeout of a queue feeding a function: 6x its timeout plus the batching window."""
    window = batching_window.to_seconds() if batching_window else 0
    return Duration.seconds(VISIBILITY_FACTOR * timeout.to_seconds() + window)


class ReconcilerStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        prefix = config.key_prefix
        self.bucket = self._bucket()
        self.secret = self._secret("PortalDbSecret", config.db_secret)
        self.events_secret = (
            self._secret("EventsDbSecret", config.events_db_secret) if config.events_db_secret else self.secret
        )
        window = Duration.seconds(config.events_batching_window_s)
        self.events_dlq = self._queue("EventsDlq", retention=Duration.days(14))
        self.events_queue = self._queue(
            "EventsQueue", visibility=visibility_for(EVENTS_TIMEOUT, window), dlq=self.events_dlq
        )
        self.work_dlq = self._queue("WorkDlq", retention=Duration.days(14))
        self.work_queue = self._queue("WorkQueue", visibility=visibility_for(WORK_TIMEOUT), dlq=self.work_dlq)
        # what EventBridge could not deliver: object events (redrivable into the events queue), schedule runs
        self.object_rule_dlq = self._queue("ObjectRuleDlq", retention=Duration.days(14))
        self.schedule_dlq = self._queue("ScheduleDlq", retention=Duration.days(14))

        self.object_rule = events.Rule(
            self,
            "ObjectChanges",
            description="S3 Object Deleted / Object Created events under Annotations/ folders of the portal bucket "
            "(the bucket must send its events to EventBridge)",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Deleted", "Object Created"],
                detail={
                    "bucket": {"name": [config.bucket_name]},
                    "object": {"key": [{"wildcard": p} for p in annotation_key_patterns(prefix)]},
                },
            ),
            targets=[targets.SqsQueue(self.events_queue, dead_letter_queue=self.object_rule_dlq)],
        )

        self.network = self._network()
        code = lambda_code(self.config.ca_bundle_path if self.config.bundles_ca else None)
        env = self._environment()
        portal_list = self._list_statements(config.bucket_name, prefix, "ListPortalBucket")
        send_work = iam.PolicyStatement(
            sid="SendWorkShards", actions=["sqs:SendMessage"], resources=[self.work_queue.queue_arn]
        )
        self.events_fn = self._function(
            "EventsFunction",
            "handle_events",
            code,
            env,
            EVENTS_TIMEOUT,
            secret=self.events_secret,
            statements=[self._consume(self.events_queue)],
        )
        self.work_fn = self._function(
            "WorkFunction",
            "handle_work",
            code,
            env,
            WORK_TIMEOUT,
            statements=[self._consume(self.work_queue), send_work, *portal_list],
        )
        inventory: list[iam.PolicyStatement] = []
        if config.inventory_manifest:
            bucket, _, key = config.inventory_manifest[len("s3://") :].partition("/")
            inventory = [
                *self._list_statements(bucket, key, "ListInventory"),
                iam.PolicyStatement(
                    sid="ReadInventory",
                    actions=["s3:GetObject"],
                    resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}/{key}*"],
                ),
            ]
        self.schedule_fn = self._function(
            "ScheduleFunction",
            "handle_schedule",
            code,
            env,
            SCHEDULE_TIMEOUT,
            memory=1024,
            statements=[send_work, *portal_list, *inventory],
            kms_via=("secretsmanager", "s3") if config.inventory_manifest else ("secretsmanager",),
        )
        self.functions = {"Events": self.events_fn, "Work": self.work_fn, "Schedule": self.schedule_fn}
        if config.reserve_concurrency:
            for fn, reserved in (
                (self.events_fn, config.events_max_concurrency),
                (self.work_fn, config.work_max_concurrency),
                (self.schedule_fn, SCHEDULE_RESERVED_CONCURRENCY),
            ):
                fn_resource = fn.node.default_child
                assert isinstance(fn_resource, lambda_.CfnFunction)
                fn_resource.reserved_concurrent_executions = reserved

        # The mappings, not SqsEventSource: its grant adds rights the mapping never uses (GetQueueUrl,
        # ChangeMessageVisibility); the role's own statement (above) holds exactly what it calls.
        self.events_mapping = self.events_fn.add_event_source_mapping(
            "SqsSource",
            event_source_arn=self.events_queue.queue_arn,
            batch_size=config.events_batch_size,
            max_batching_window=window,
            report_batch_item_failures=True,
            max_concurrency=config.events_max_concurrency,
        )
        self.work_mapping = self.work_fn.add_event_source_mapping(
            "SqsSource",
            event_source_arn=self.work_queue.queue_arn,
            batch_size=1,
            report_batch_item_failures=True,
            max_concurrency=config.work_max_concurrency,
        )
        self.schedule_rules = {}
        for name, rate, action in (
            ("PurgeSchedule", config.purge_schedule, Action.PURGE),
            ("ReconcileSchedule", config.reconcile_schedule, Action.RECONCILE),
        ):
            self.schedule_rules[name] = events.Rule(
                self,
                name,
                schedule=events.Schedule.expression(rate),
                targets=[
                    targets.LambdaFunction(
                        self.schedule_fn,
                        event=events.RuleTargetInput.from_object({"action": action}),
                        retry_attempts=2,
                        dead_letter_queue=self.schedule_dlq,
                    )
                ],
            )

        self.alarm_topic, self.alarms = self._alarms()
        self.dashboard = self._dashboard()
        self._suppressions()
        self._outputs()

    # --- parts ---------------------------------------------------------------------------

    def _secret(self, name: str, secret: str) -> secretsmanager.ISecret:
        if secret.startswith("arn:"):
            return secretsmanager.Secret.from_secret_complete_arn(self, name, secret)
        return secretsmanager.Secret.from_secret_name_v2(self, name, secret)

    def _bucket(self) -> s3.IBucket:
        if not self.config.owned_bucket:
            return s3.Bucket.from_bucket_name(self, "PortalBucket", self.config.bucket_name)
        bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=self.config.bucket_name,
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
        """The portal database's VPC: the Lambdas' own security group, its way to PostgreSQL and
        the endpoints that let them reach S3, SQS and Secrets Manager without a NAT."""
        c = self.config
        self.lambda_security_group: ec2.SecurityGroup | None = None
        self.endpoints: dict[str, ec2.GatewayVpcEndpoint | ec2.InterfaceVpcEndpoint] = {}
        if not c.vpc_id:
            return {}
        vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "PortalVpc",
            vpc_id=c.vpc_id,
            availability_zones=list(c.availability_zones),
            private_subnet_ids=list(c.subnet_ids),
            private_subnet_route_table_ids=list(c.route_table_ids) or None,
        )
        subnets = ec2.SubnetSelection(subnets=vpc.private_subnets)
        group = ec2.SecurityGroup(
            self,
            "LambdaSecurityGroup",
            vpc=vpc,
            description="annotation-reconciler Lambdas: HTTPS to AWS APIs and PostgreSQL to the portal database",
            allow_all_outbound=False,
        )
        self.lambda_security_group = group
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs (VPC endpoints or a NAT)")
        port = ec2.Port.tcp(c.db_port)
        if c.db_security_group_id:
            db_group = ec2.SecurityGroup.from_security_group_id(
                self, "PortalDbSecurityGroup", c.db_security_group_id, allow_all_outbound=False
            )
            group.add_egress_rule(db_group, port, "PostgreSQL to the portal database")
            db_group.add_ingress_rule(group, port, "annotation-reconciler Lambdas")
        else:
            group.add_egress_rule(ec2.Peer.any_ipv4(), port, "PostgreSQL to the portal database")
        groups: list[ec2.ISecurityGroup] = [group]
        if c.security_group_id:
            groups.append(ec2.SecurityGroup.from_security_group_id(self, "PortalDbAccess", c.security_group_id))

        wanted = c.endpoints_to_create
        if "s3" in wanted:
            self.endpoints["s3"] = ec2.GatewayVpcEndpoint(
                self, "S3Endpoint", vpc=vpc, service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[subnets]
            )
        interface = [
            (name, service)
            for name, service in (
                ("sqs", ec2.InterfaceVpcEndpointAwsService.SQS),
                ("secretsmanager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
            )
            if name in wanted
        ]
        if interface:
            endpoint_group = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=vpc,
                description="annotation-reconciler interface endpoints: HTTPS from the whole VPC (their private DNS "
                "answers for every workload in it)",
                allow_all_outbound=False,
            )
            # Private DNS makes these endpoints the answer to sqs./secretsmanager.REGION.amazonaws.com for the
            # whole VPC: admitting only the Lambdas would cut every other workload in it off those services.
            assert c.vpc_cidr is not None  # StackConfig.validate requires it when interface endpoints are made
            endpoint_group.add_ingress_rule(
                ec2.Peer.ipv4(c.vpc_cidr), ec2.Port.tcp(443), "HTTPS from the VPC (private DNS serves all of it)"
            )
            for name, service in interface:
                self.endpoints[name] = ec2.InterfaceVpcEndpoint(
                    self,
                    f"{'SecretsManager' if name == 'secretsmanager' else name.upper()}Endpoint",
                    vpc=vpc,
                    service=service,
                    subnets=ec2.SubnetSelection(subnets=vpc.private_subnets, one_per_az=True),
                    private_dns_enabled=True,
                    open=False,
                    security_groups=[endpoint_group],
                )
        return {"vpc": vpc, "security_groups": groups, "vpc_subnets": subnets}

    def _environment(self) -> dict[str, str]:
        c = self.config
        env = {
            Env.DB_SECRET_ARN: self.secret.secret_arn,
            Env.BUCKET: c.bucket_name,
            Env.S3_PREFIX: c.stored_path_prefix,
            Env.DRY_RUN: "true" if c.dry_run else "false",
            Env.GRACE_PERIOD_HOURS: f"{c.grace_period_hours:g}",
            Env.MAX_PURGE_FRACTION: f"{c.max_purge_fraction:g}",
            Env.WORK_QUEUE_URL: self.work_queue.queue_url,
            Powertools.SERVICE_NAME: SERVICE,
            Powertools.METRICS_NAMESPACE: NAMESPACE,
            Powertools.LOG_LEVEL: "INFO",
        }
        if c.inventory_manifest:
            env[Env.INVENTORY_MANIFEST] = c.inventory_manifest
        if c.bundles_ca:  # the database's certificate is verified against it (a private CA such as RDS's)
            env[Env.DB_CA_BUNDLE] = f"/var/task/{CA_BUNDLE_NAME}"
        return {k: v for k, v in env.items() if v != ""}

    def _function(
        self,
        name: str,
        handler: str,
        code: lambda_.Code,
        env: dict[str, str],
        timeout: Duration,
        *,
        memory: int = 512,
        secret: secretsmanager.ISecret | None = None,
        statements: list[iam.PolicyStatement],
        kms_via: tuple[str, ...] = ("secretsmanager",),
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            retention=_retention(self.config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        secret = secret or self.secret
        if secret is not self.secret:
            env = {**env, Env.DB_SECRET_ARN: secret.secret_arn}
        role = iam.Role(
            self,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"annotation-reconciler {name}: exactly the calls its code (and Lambda on its behalf) makes",
            inline_policies={
                "Execution": iam.PolicyDocument(
                    statements=self._execution_statements(log_group, secret, kms_via) + statements
                )
            },
        )
        fn = lambda_.Function(
            self,
            name,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"annotation_reconciler.handlers.{handler}",
            code=code,
            timeout=timeout,
            memory_size=memory,
            environment=env,
            role=role,
            # Lambda records each invocation's segment itself; the bundle has no X-Ray SDK, so the
            # functions send nothing to X-Ray from the VPC and need no X-Ray endpoint.
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            **self.network,
        )
        for endpoint in self.endpoints.values():
            fn.node.add_dependency(endpoint)  # no cold start before the endpoints exist
        return fn

    def _execution_statements(
        self, log_group: logs.LogGroup, secret: secretsmanager.ISecret, kms_via: tuple[str, ...]
    ) -> list[iam.PolicyStatement]:
        """What every function needs: its own log group (no logs:* on *), its secret's value (no DescribeSecret),
        the VPC's network interfaces, and kms:Decrypt on exactly the keys named, through the services named."""
        statements = [
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            ),
            iam.PolicyStatement(
                sid="ReadDatabaseSecret",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self._secret_resource(secret)],
            ),
        ]
        if self.config.vpc_id:
            statements.append(iam.PolicyStatement(sid="AttachToVpc", actions=VPC_ENI, resources=["*"]))
        if self.config.kms_key_arns:
            statements.append(
                iam.PolicyStatement(
                    sid="DecryptWithCustomerKeys",
                    actions=["kms:Decrypt"],
                    resources=list(self.config.kms_key_arns),
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": [f"{service}.{cdk.Aws.REGION}.amazonaws.com" for service in kms_via]
                        }
                    },
                )
            )
        return statements

    def _secret_resource(self, secret: secretsmanager.ISecret) -> str:
        """The secret's ARN; for a secret named without its ARN, the ``-??????`` pattern of its random suffix."""
        name = self._secret_name(secret)
        if name.startswith("arn:"):
            return name
        return f"arn:{cdk.Aws.PARTITION}:secretsmanager:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:secret:{name}-??????"

    def _secret_name(self, secret: secretsmanager.ISecret) -> str:
        if secret is self.events_secret and secret is not self.secret and self.config.events_db_secret:
            return self.config.events_db_secret
        return self.config.db_secret

    @staticmethod
    def _consume(queue: sqs.Queue) -> iam.PolicyStatement:
        return iam.PolicyStatement(sid="ConsumeOwnQueue", actions=SQS_CONSUME, resources=[queue.queue_arn])

    @staticmethod
    def _list_statements(bucket: str, prefix: str, sid: str) -> list[iam.PolicyStatement]:
        """ListBucket on ``bucket``, only under ``prefix`` when one is given. The portal bucket gets nothing else:
        the code only lists it (a LIST proves a key absent; no object is ever read)."""
        statement = iam.PolicyStatement(
            sid=sid, actions=["s3:ListBucket"], resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}"]
        )
        if prefix:
            statement.add_condition("StringLike", {"s3:prefix": [f"{prefix}*"]})
        return [statement]

    # --- alarms and the dashboard -------------------------------------------------------------

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        description: str,
        *,
        threshold: float = 0,
    ) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )

    def _custom_metric(self, name: str, period: Duration | None = None) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=name,
            dimensions_map={"service": SERVICE},
            statistic="Sum",
            period=period or Duration.hours(1),
        )

    def _gauge(self, name: str) -> cloudwatch.Metric:
        """A waiting-state gauge: its largest value in the hour."""
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=name,
            dimensions_map={"service": SERVICE},
            statistic="Maximum",
            period=Duration.hours(1),
        )

    def _rule_failures(self, rule: events.Rule) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="FailedInvocations",
            dimensions_map={"RuleName": rule.rule_name},
            statistic="Sum",
            period=Duration.minutes(5),
        )

    def _alarms(self) -> tuple[sns.Topic, list[cloudwatch.Alarm]]:
        topic = sns.Topic(self, "AlarmTopic", enforce_ssl=True, display_name="annotation-reconciler alarms")
        if self.config.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(self.config.alarm_email))
        five = Duration.minutes(5)
        # A DLQ alarms on each new arrival, not on its depth: one old message left there for its 14 days would
        # keep a depth alarm in ALARM and hide every later failure. SQS's redrive does not count in the DLQ's
        # NumberOfMessagesSent (only SendMessage does), so a redrive DLQ alarms when its depth grows (missing
        # points, an idle queue, count as empty); EventBridge's DLQs receive by SendMessage and alarm on that.
        alarms = [
            self._alarm(
                f"{name}Arrivals",
                cloudwatch.MathExpression(
                    expression="DIFF(FILL(depth, 0))",
                    using_metrics={
                        "depth": q.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum")
                    },
                    label=f"messages newly in {name}",
                    period=five,
                ),
                f"new messages in {name}: {what}; see the README's runbook to inspect and redrive them",
            )
            for name, q, what in (
                ("EventsDlq", self.events_dlq, "S3 events failed 5 times"),
                ("WorkDlq", self.work_dlq, "reconciliation shards failed 5 times"),
            )
        ]
        alarms += [
            self._alarm(
                f"{name}Arrivals",
                q.metric_number_of_messages_sent(period=five, statistic="Sum"),
                f"new messages in {name}: {what}; see the README's runbook to inspect and redrive them",
            )
            for name, q, what in (
                ("ObjectRuleDlq", self.object_rule_dlq, "EventBridge could not deliver S3 events to the events queue"),
                ("ScheduleDlq", self.schedule_dlq, "EventBridge could not invoke the schedule Lambda"),
            )
        ]
        alarms += [
            self._alarm(
                f"{name}Age",
                q.metric_approximate_age_of_oldest_message(period=five, statistic="Maximum"),
                f"the oldest message of {name} waited over {limit.to_human_string()}: the consumer is stuck, "
                "throttled or failing",
                threshold=limit.to_seconds(),
            )
            for name, q, limit in (
                ("EventsQueue", self.events_queue, EVENTS_QUEUE_AGE_ALARM),
                ("WorkQueue", self.work_queue, WORK_QUEUE_AGE_ALARM),
            )
        ]
        for name, fn in self.functions.items():
            timeout = fn.timeout.to_seconds() if fn.timeout else 900
            alarms += [
                self._alarm(f"{name}Errors", fn.metric_errors(period=five), f"the {name} function failed"),
                self._alarm(
                    f"{name}Throttles",
                    fn.metric_throttles(period=five),
                    f"the {name} function was throttled (reserved concurrency or the account's limit)",
                ),
                self._alarm(
                    f"{name}DurationNearTimeout",
                    fn.metric_duration(period=five, statistic="Maximum"),
                    f"the {name} function ran over {DURATION_ALARM_SHARE:.0%} of its {timeout:g} s timeout "
                    "(a VPC endpoint or the database may be unreachable)",
                    threshold=DURATION_ALARM_SHARE * timeout * 1000,
                ),
            ]
        for name, rule in (("ObjectChanges", self.object_rule), *self.schedule_rules.items()):
            alarms.append(
                self._alarm(
                    f"{name}FailedInvocations",
                    self._rule_failures(rule),
                    f"the EventBridge rule {name} could not deliver to its target (see its DLQ)",
                )
            )
        alarms.append(
            self._alarm(
                "MassDeletionGuard",
                self._custom_metric(Metric.PURGE_HELD),
                "the mass-deletion guard held annotations: check them, then run `annotation-reconciler approve`",
            )
        )
        alarms += [
            self._alarm(
                Metric.INVENTORY_STALE,
                self._custom_metric(Metric.INVENTORY_STALE, Duration.days(1)),
                "the S3 Inventory report is older than RECONCILER_INVENTORY_MAX_AGE_HOURS: the scan LISTs instead; "
                "check that the inventory configuration still delivers",
            ),
            self._alarm(
                Metric.PREFIXES_BLIND,
                self._custom_metric(Metric.PREFIXES_BLIND, Duration.days(1)),
                "prefixes S3 would not list after their retries: the scan is blind there; "
                "see `annotation-reconciler status`",
            ),
            self._alarm(
                Metric.INVENTORY_UNREADABLE,
                self._custom_metric(Metric.INVENTORY_UNREADABLE, Duration.days(1)),
                "the S3 Inventory report could not be read (missing or altered file, another bucket, too large): "
                "the scan LISTs instead; see the schedule's log for the reason",
            ),
        ]
        # The waiting states: gauges the purge emits every hour, in ALARM for as long as anything waits.
        alarms += [
            self._alarm(name, self._gauge(name), f"{what}; `annotation-reconciler status` explains each")
            for name, what in (
                (Metric.HELD_WAITING, "annotations held for an operator's approval"),
                (Metric.PURGE_ROWS_FAILED, "annotations the purge could not delete even alone (their error is kept)"),
                (Metric.QUARANTINE_OVERDUE, "annotations quarantined longer than the grace period plus one day"),
                (Metric.BLIND_PREFIXES, "prefixes the scan cannot list (S3 errors after retries, or the page limit)"),
            )
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return topic, alarms

    def _dashboard(self) -> cloudwatch.Dashboard:
        hour = Duration.hours(1)
        five = Duration.minutes(5)
        queues = {
            "events": self.events_queue,
            "work": self.work_queue,
            "events DLQ": self.events_dlq,
            "work DLQ": self.work_dlq,
            "object rule DLQ": self.object_rule_dlq,
            "schedule DLQ": self.schedule_dlq,
        }
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{self.stack_name}-{SERVICE}")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Annotations per hour: quarantined, released, purged, would purge (dry run), held",
                left=[
                    self._custom_metric(n).with_(label=n, period=hour)
                    for n in (
                        Metric.ANNOTATIONS_QUARANTINED,
                        Metric.ANNOTATIONS_RELEASED,
                        Metric.ANNOTATIONS_PURGED,
                        Metric.ANNOTATIONS_WOULD_PURGE,
                        Metric.ANNOTATIONS_HELD,
                        Metric.PURGE_HELD,
                    )
                ],
                width=24,
            ),
            cloudwatch.GraphWidget(
                title="What waits now (hourly gauges): held, failed, unknown, overdue rows; blind prefixes",
                left=[
                    self._gauge(n).with_(label=n)
                    for n in (
                        Metric.HELD_WAITING,
                        Metric.PURGE_ROWS_FAILED,
                        Metric.UNKNOWN_WAITING,
                        Metric.QUARANTINE_OVERDUE,
                        Metric.BLIND_PREFIXES,
                    )
                ],
                width=24,
            ),
            cloudwatch.GraphWidget(
                title="Queue depth (visible messages)",
                left=[
                    q.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum", label=label)
                    for label, q in queues.items()
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Age of the oldest message (s)",
                left=[
                    q.metric_approximate_age_of_oldest_message(period=five, statistic="Maximum", label=label)
                    for label, q in queues.items()
                    if label in ("events", "work")
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Errors",
                left=[fn.metric_errors(period=five, label=name) for name, fn in self.functions.items()]
                + [self._rule_failures(r).with_(label=f"{n} failed invocations") for n, r in self._rules().items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Throttles",
                left=[fn.metric_throttles(period=five, label=name) for name, fn in self.functions.items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Longest run (ms) against the timeouts",
                left=[
                    fn.metric_duration(period=five, statistic="Maximum", label=name)
                    for name, fn in self.functions.items()
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Events seen, skipped, rejected; shards queued and scanned",
                left=[
                    self._custom_metric(n).with_(label=n, period=hour)
                    for n in (
                        Metric.EVENTS_SEEN,
                        Metric.EVENTS_SKIPPED,
                        Metric.EVENTS_REJECTED,
                        Metric.SHARDS_QUEUED,
                        Metric.SHARDS_SCANNED,
                    )
                ],
                width=24,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24),
        )
        return dashboard

    def _rules(self) -> dict[str, events.Rule]:
        return {"ObjectChanges": self.object_rule, **self.schedule_rules}

    def _outputs(self) -> None:
        values: dict[str, tuple[str, str]] = {
            "EventsFunctionName": (self.events_fn.function_name, "the events Lambda"),
            "WorkFunctionName": (self.work_fn.function_name, "the work Lambda"),
            "ScheduleFunctionName": (self.schedule_fn.function_name, "the schedule Lambda (purge, reconcile)"),
            "EventsSourceMappingId": (
                self.events_mapping.event_source_mapping_id,
                "aws lambda update-event-source-mapping --uuid ... --no-enabled pauses the events Lambda",
            ),
            "WorkSourceMappingId": (
                self.work_mapping.event_source_mapping_id,
                "aws lambda update-event-source-mapping --uuid ... --no-enabled pauses the work Lambda",
            ),
            "EventsQueueUrl": (self.events_queue.queue_url, "the events queue"),
            "EventsQueueArn": (self.events_queue.queue_arn, "redrive target of ObjectRuleDlq"),
            "WorkQueueUrl": (self.work_queue.queue_url, "the work queue"),
            "AlarmTopicArn": (self.alarm_topic.topic_arn, "subscribe here to receive the alarms"),
            "DashboardName": (self.dashboard.dashboard_name, "the CloudWatch dashboard"),
            "DashboardUrl": (
                f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
                f"#dashboards/dashboard/{self.dashboard.dashboard_name}",
                "the dashboard in the console",
            ),
        }
        for name, rule in self._rules().items():
            values[f"{name}RuleName"] = (rule.rule_name, "aws events disable-rule --name ... stops it")
        for name, queue in (
            ("EventsDlq", self.events_dlq),
            ("WorkDlq", self.work_dlq),
            ("ObjectRuleDlq", self.object_rule_dlq),
            ("ScheduleDlq", self.schedule_dlq),
        ):
            values[f"{name}Url"] = (queue.queue_url, f"{name} (inspect)")
            values[f"{name}Arn"] = (queue.queue_arn, f"{name} (redrive)")
        if self.lambda_security_group is not None:
            values["LambdaSecurityGroupId"] = (self.lambda_security_group.security_group_id, "the Lambdas' group")
        for key, (value, description) in values.items():
            cdk.CfnOutput(self, key, value=value, description=description)

    # --- cdk-nag ------------------------------------------------------------------------------

    def _suppressions(self) -> None:
        """Each finding is suppressed on the resource it concerns, for the exact wildcard (``applies_to``) and with a
        reason that names the resource: a new wildcard anywhere fails the synth."""
        partition = "<AWS::Partition>"
        for name, fn in (
            ("EventsFunction", self.events_fn),
            ("WorkFunction", self.work_fn),
            ("ScheduleFunction", self.schedule_fn),
        ):
            secret = self._secret_name(self.events_secret if fn is self.events_fn else self.secret)
            star = "xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) take no resource"
            if self.config.vpc_id:
                star += (
                    ", nor do the network-interface actions Lambda calls to attach it to the VPC ("
                    + ", ".join(VPC_ENI)
                    + ")"
                )
            wildcards = [("Resource::*", f"{name}'s role: {star}; tests/infra compare every statement with a table.")]
            if not secret.startswith("arn:"):
                wildcards.append(
                    (
                        f"Resource::arn:{partition}:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:{secret}-??????",
                        f"{name}'s role: the secret {secret} is named without its ARN, so GetSecretValue matches its "
                        "random six-character suffix (-??????); give the full ARN in db_secret to drop this.",
                    )
                )
            if fn is self.schedule_fn and self.config.inventory_manifest:
                bucket, _, key = self.config.inventory_manifest[len("s3://") :].partition("/")
                wildcards.append(
                    (
                        f"Resource::arn:{partition}:s3:::{bucket}/{key}*",
                        f"{name}'s role: s3:GetObject under s3://{bucket}/{key}, where S3 Inventory writes its "
                        "dated manifests and data files (inventory_manifest); nothing else is read.",
                    )
                )
            role = fn.role
            assert role is not None
            NagSuppressions.add_resource_suppressions(
                role,
                [NagPackSuppression(id="AwsSolutions-IAM5", reason=why, applies_to=[w]) for w, why in wildcards],
                apply_to_children=True,  # the X-Ray statements are in the role's default policy
            )
            NagSuppressions.add_resource_suppressions(
                fn,
                [
                    NagPackSuppression(
                        id="AwsSolutions-L1",
                        reason=f"{name}: pinned to python3.12, the runtime the package and its bundled wheels are "
                        "built and tested for; upgraded deliberately, not by default.",
                    )
                ],
            )
        for name, queue, of in (
            ("EventsDlq", self.events_dlq, "the events queue's"),
            ("WorkDlq", self.work_dlq, "the work queue's"),
            ("ObjectRuleDlq", self.object_rule_dlq, "the ObjectChanges rule's"),
            ("ScheduleDlq", self.schedule_dlq, "the schedule rules'"),
        ):
            NagSuppressions.add_resource_suppressions(
                queue,
                [
                    NagPackSuppression(
                        id="AwsSolutions-SQS3",
                        reason=f"{name} is {of} dead-letter queue: a dead-letter queue has none itself.",
                    )
                ],
            )
        NagSuppressions.add_resource_suppressions(
            self.alarm_topic,
            [
                NagPackSuppression(
                    id="AwsSolutions-SNS2",
                    reason="AlarmTopic: alarm notifications carry no data; SSE would need a customer managed key "
                    "whose policy admits CloudWatch, which alarm state changes do not warrant.",
                )
            ],
        )
        if isinstance(self.bucket, s3.Bucket):
            NagSuppressions.add_resource_suppressions(
                self.bucket,
                [
                    NagPackSuppression(
                        id="AwsSolutions-S1",
                        reason=f"Bucket {self.config.bucket_name}: owned_bucket is for sandboxes and tests; the "
                        "portal's bucket is imported, never created, and keeps its own logging.",
                    )
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
