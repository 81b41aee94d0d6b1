"""The CloudWatch dashboard: annotations per hour, what waits now, the queues, the functions, the events and
shards, and every alarm.

It is created directly in the stack's scope (``stack`` is the ``cdk.Stack``, never a new ``Construct`` child):
a construct in between would change its logical ID, and CloudFormation would replace it.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

from annotation_reconciler.names import SERVICE, Metric
from infra.functions import Lambdas
from infra.messaging import Messaging
from infra.monitoring import FIVE_MINUTES, HOUR, custom_metric, gauge, rule_failures, rules


def add_dashboard(
    stack: cdk.Stack, messaging: Messaging, lambdas: Lambdas, alarms: list[cloudwatch.Alarm]
) -> cloudwatch.Dashboard:
    five = FIVE_MINUTES
    m = messaging
    queues = {
        "events": m.events_queue,
        "work": m.work_queue,
        "events DLQ": m.events_dlq,
        "work DLQ": m.work_dlq,
        "object rule DLQ": m.object_rule_dlq,
        "schedule DLQ": m.schedule_dlq,
    }
    functions = lambdas.by_name
    dashboard = cloudwatch.Dashboard(stack, "Dashboard", dashboard_name=f"{stack.stack_name}-{SERVICE}")
    dashboard.add_widgets(
        cloudwatch.GraphWidget(
            title="Annotations per hour: quarantined, released, purged, would purge (dry run), held",
            left=[
                custom_metric(n).with_(label=n, period=HOUR)
                for n in (
                    Metric.ANNOTATIONS_QUARANTINED,
                    Metric.ANNOTATIONS_RELEASED,
                    Metric.ANNOTATIONS_PURGED,
                    Metric.ANNOTATIONS_WOULD_PURGE,
                    Metric.ANNOTATIONS_HELD,
                )
            ],
            width=24,
        ),
        cloudwatch.GraphWidget(
            title="What waits now (hourly gauges): held, failed, unknown, overdue rows; blind prefixes",
            left=[
                gauge(n).with_(label=n)
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
            left=[fn.metric_errors(period=five, label=name) for name, fn in functions.items()]
            + [rule_failures(r).with_(label=f"{n} failed invocations") for n, r in rules(messaging, lambdas).items()],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Throttles",
            left=[fn.metric_throttles(period=five, label=name) for name, fn in functions.items()],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Longest run (ms) against the timeouts",
            left=[fn.metric_duration(period=five, statistic="Maximum", label=name) for name, fn in functions.items()],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Events seen, skipped, rejected; shards queued and scanned",
            left=[
                custom_metric(n).with_(label=n, period=HOUR)
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
        cloudwatch.AlarmStatusWidget(title="Alarms", alarms=alarms, width=24),
    )
    return dashboard
