"""Alarms that notify someone (one SNS topic) on the queues, the functions, the rules and the reconciler's own
metrics; the metrics themselves, which the dashboard (``infra/dashboard.py``) shows too.

Every resource is created directly in the stack's scope (``stack`` is the ``cdk.Stack``, never a new
``Construct`` child): a construct in between would change every logical ID, and CloudFormation would replace
the alarms and the topic (and its subscriptions) of a running deployment.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions

from annotation_reconciler.names import NAMESPACE, SERVICE, Env, Metric
from infra.config import StackConfig
from infra.functions import Lambdas
from infra.messaging import Messaging

#: Alarm when a function's longest run passes this share of its timeout.
DURATION_ALARM_SHARE = 0.8
EVENTS_QUEUE_AGE_ALARM = Duration.hours(1)
WORK_QUEUE_AGE_ALARM = Duration.hours(6)
FIVE_MINUTES = Duration.minutes(5)
HOUR = Duration.hours(1)


@dataclass(frozen=True)
class Monitoring:
    alarm_topic: sns.Topic
    alarms: list[cloudwatch.Alarm]


def rules(messaging: Messaging, lambdas: Lambdas) -> dict[str, events.Rule]:
    """Every EventBridge rule of the stack by logical ID: ObjectChanges, then the schedules."""
    return {"ObjectChanges": messaging.object_rule, **lambdas.schedule_rules}


def add_monitoring(stack: cdk.Stack, config: StackConfig, messaging: Messaging, lambdas: Lambdas) -> Monitoring:
    """Create the alarm topic and every alarm (each notifying the topic) in ``stack``."""
    topic = sns.Topic(stack, "AlarmTopic", enforce_ssl=True, display_name="annotation-reconciler alarms")
    if config.alarm_email:
        topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
    alarms = [
        *_queue_alarms(stack, messaging),
        *_function_alarms(stack, lambdas),
        *_rule_alarms(stack, messaging, lambdas),
        *_reconciler_alarms(stack),
    ]
    for alarm in alarms:
        alarm.add_alarm_action(cw_actions.SnsAction(topic))
    return Monitoring(alarm_topic=topic, alarms=alarms)


def custom_metric(name: str, period: Duration | None = None) -> cloudwatch.Metric:
    """One of the reconciler's counters, summed (hourly unless told)."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE},
        statistic="Sum",
        period=period or HOUR,
    )


def gauge(name: str) -> cloudwatch.Metric:
    """A waiting-state gauge: its largest value in the hour."""
    return cloudwatch.Metric(
        namespace=NAMESPACE, metric_name=name, dimensions_map={"service": SERVICE}, statistic="Maximum", period=HOUR
    )


def rule_failures(rule: events.Rule) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/Events",
        metric_name="FailedInvocations",
        dimensions_map={"RuleName": rule.rule_name},
        statistic="Sum",
        period=FIVE_MINUTES,
    )


def _alarm(
    stack: cdk.Stack, name: str, metric: cloudwatch.IMetric, description: str, *, threshold: float = 0
) -> cloudwatch.Alarm:
    return cloudwatch.Alarm(
        stack,
        name,
        metric=metric,
        threshold=threshold,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        alarm_description=description,
    )


def _queue_alarms(stack: cdk.Stack, m: Messaging) -> list[cloudwatch.Alarm]:
    five = FIVE_MINUTES
    runbook = "see the README's runbook to inspect and redrive them"
    # A DLQ alarms on each new arrival, not on its depth: one old message left there for its 14 days would
    # keep a depth alarm in ALARM and hide every later failure. SQS's redrive does not count in the DLQ's
    # NumberOfMessagesSent (only SendMessage does), so a redrive DLQ alarms when its depth grows (missing
    # points, an idle queue, count as empty); EventBridge's DLQs receive by SendMessage and alarm on that.
    alarms = [
        _alarm(
            stack,
            f"{name}Arrivals",
            cloudwatch.MathExpression(
                expression="DIFF(FILL(depth, 0))",
                using_metrics={
                    "depth": q.metric_approximate_number_of_messages_visible(period=five, statistic="Maximum")
                },
                label=f"messages newly in {name}",
                period=five,
            ),
            f"new messages in {name}: {what}; {runbook}",
        )
        for name, q, what in (
            ("EventsDlq", m.events_dlq, "S3 events failed 5 times"),
            ("WorkDlq", m.work_dlq, "reconciliation shards failed 5 times"),
        )
    ]
    alarms += [
        _alarm(
            stack,
            f"{name}Arrivals",
            q.metric_number_of_messages_sent(period=five, statistic="Sum"),
            f"new messages in {name}: {what}; {runbook}",
        )
        for name, q, what in (
            ("ObjectRuleDlq", m.object_rule_dlq, "EventBridge could not deliver S3 events to the events queue"),
            ("ScheduleDlq", m.schedule_dlq, "EventBridge could not invoke the schedule Lambda"),
        )
    ]
    alarms += [
        _alarm(
            stack,
            f"{name}Age",
            q.metric_approximate_age_of_oldest_message(period=five, statistic="Maximum"),
            f"the oldest message of {name} waited over {limit.to_human_string()}: the consumer is stuck, "
            "throttled or failing",
            threshold=limit.to_seconds(),
        )
        for name, q, limit in (
            ("EventsQueue", m.events_queue, EVENTS_QUEUE_AGE_ALARM),
            ("WorkQueue", m.work_queue, WORK_QUEUE_AGE_ALARM),
        )
    ]
    return alarms


def _function_alarms(stack: cdk.Stack, lambdas: Lambdas) -> list[cloudwatch.Alarm]:
    five = FIVE_MINUTES
    alarms = []
    for name, fn in lambdas.by_name.items():
        timeout = fn.timeout.to_seconds() if fn.timeout else 900
        alarms += [
            _alarm(stack, f"{name}Errors", fn.metric_errors(period=five), f"the {name} function failed"),
            _alarm(
                stack,
                f"{name}Throttles",
                fn.metric_throttles(period=five),
                f"the {name} function was throttled (reserved concurrency or the account's limit)",
            ),
            _alarm(
                stack,
                f"{name}DurationNearTimeout",
                fn.metric_duration(period=five, statistic="Maximum"),
                f"the {name} function ran over {DURATION_ALARM_SHARE:.0%} of its {timeout:g} s timeout "
                "(a VPC endpoint or the database may be unreachable)",
                threshold=DURATION_ALARM_SHARE * timeout * 1000,
            ),
        ]
    return alarms


def _rule_alarms(stack: cdk.Stack, messaging: Messaging, lambdas: Lambdas) -> list[cloudwatch.Alarm]:
    return [
        _alarm(
            stack,
            f"{name}FailedInvocations",
            rule_failures(rule),
            f"the EventBridge rule {name} could not deliver to its target (see its DLQ)",
        )
        for name, rule in rules(messaging, lambdas).items()
    ]


def _reconciler_alarms(stack: cdk.Stack) -> list[cloudwatch.Alarm]:
    """The reconciler's own metrics: the mass-deletion guard, a blind scan, and the waiting states."""
    day = Duration.days(1)
    alarms = [
        _alarm(
            stack,
            "MassDeletionGuard",
            custom_metric(Metric.ANNOTATIONS_HELD),
            "the mass-deletion guard held annotations: check them, then run `annotation-reconciler approve`",
        ),
        _alarm(
            stack,
            Metric.INVENTORY_STALE,
            custom_metric(Metric.INVENTORY_STALE, day),
            f"the S3 Inventory report is older than {Env.INVENTORY_MAX_AGE_HOURS}: the scan LISTs instead; "
            "check that the inventory configuration still delivers",
        ),
        _alarm(
            stack,
            Metric.PREFIXES_BLIND,
            custom_metric(Metric.PREFIXES_BLIND, day),
            "prefixes S3 would not list after their retries: the scan is blind there; "
            "see `annotation-reconciler status`",
        ),
        _alarm(
            stack,
            Metric.INVENTORY_UNREADABLE,
            custom_metric(Metric.INVENTORY_UNREADABLE, day),
            "the S3 Inventory report could not be read (missing or altered file, another bucket, too large): "
            "the scan LISTs instead; see the schedule's log for the reason",
        ),
    ]
    # The waiting states: gauges the purge emits every hour, in ALARM for as long as anything waits.
    alarms += [
        _alarm(stack, name, gauge(name), f"{what}; `annotation-reconciler status` explains each")
        for name, what in (
            (Metric.HELD_WAITING, "annotations held for an operator's approval"),
            (Metric.PURGE_ROWS_FAILED, "annotations the purge could not delete even alone (their error is kept)"),
            (Metric.QUARANTINE_OVERDUE, "annotations quarantined longer than the grace period plus one day"),
            (Metric.BLIND_PREFIXES, "prefixes the scan cannot list (S3 errors after retries, or the page limit)"),
        )
    ]
    return alarms
