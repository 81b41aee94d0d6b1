"""The reconciler's stack: network, queues, the three Lambdas, schedules, least-privilege IAM, alarms that
notify someone, and a dashboard. This module only composes the parts, each a module of one job:

- ``infra/messaging.py``: the bucket (sandboxes only), the queues and dead-letter queues, the ``ObjectChanges`` rule
- ``infra/network.py``: the Lambdas' security group, the database's ingress rule, the VPC endpoints
- ``infra/functions.py``: secrets, environment, log groups, roles, the functions, event sources, schedule rules
  (their IAM statements in ``infra/policies.py``)
- ``infra/monitoring.py``: the alarm topic, the alarms and their metrics; ``infra/dashboard.py``: the dashboard
- ``infra/nag.py``: the cdk-nag suppressions

Each part creates its resources in this stack's own scope, never in a ``Construct`` of its own: the logical IDs
(and so the resources of a running deployment) stay exactly those of the single class this module used to be.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from infra.config import StackConfig
from infra.dashboard import add_dashboard
from infra.functions import add_functions, add_secrets
from infra.messaging import add_messaging
from infra.monitoring import add_monitoring, rules
from infra.nag import suppress_findings
from infra.network import add_network


class ReconcilerStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        secrets = add_secrets(self, config)
        messaging = add_messaging(self, config)
        network = add_network(self, config)
        lambdas = add_functions(self, config, secrets=secrets, messaging=messaging, network=network)
        monitoring = add_monitoring(self, config, messaging, lambdas)
        self.messaging, self.network, self.lambdas, self.monitoring = messaging, network, lambdas, monitoring

        self.bucket = messaging.bucket
        self.secret, self.events_secret = secrets.portal.secret, secrets.events.secret
        self.events_queue, self.events_dlq = messaging.events_queue, messaging.events_dlq
        self.work_queue, self.work_dlq = messaging.work_queue, messaging.work_dlq
        self.object_rule_dlq, self.schedule_dlq = messaging.object_rule_dlq, messaging.schedule_dlq
        self.object_rule = messaging.object_rule
        self.lambda_security_group, self.endpoints = network.lambda_security_group, network.endpoints
        self.events_fn, self.work_fn, self.schedule_fn = lambdas.events_fn, lambdas.work_fn, lambdas.schedule_fn
        self.functions = lambdas.by_name
        self.events_mapping, self.work_mapping = lambdas.events_mapping, lambdas.work_mapping
        self.schedule_rules = lambdas.schedule_rules
        self.alarm_topic, self.alarms = monitoring.alarm_topic, monitoring.alarms
        self.dashboard = add_dashboard(self, messaging, lambdas, monitoring.alarms)

        suppress_findings(config, secrets=secrets, messaging=messaging, lambdas=lambdas, monitoring=monitoring)
        self._outputs()

    def _outputs(self) -> None:
        """What operators look up: names to pause or inspect each part, the queues to redrive, the dashboard."""
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
        for name, rule in rules(self.messaging, self.lambdas).items():
            values[f"{name}RuleName"] = (rule.rule_name, "aws events disable-rule --name ... stops it")
        for name, queue in self.messaging.dead_letter_queues.items():
            values[f"{name}Url"] = (queue.queue_url, f"{name} (inspect)")
            values[f"{name}Arn"] = (queue.queue_arn, f"{name} (redrive)")
        if self.lambda_security_group is not None:
            values["LambdaSecurityGroupId"] = (self.lambda_security_group.security_group_id, "the Lambdas' group")
        for key, (value, description) in values.items():
            cdk.CfnOutput(self, key, value=value, description=description)
