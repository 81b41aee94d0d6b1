"""The synthesized stack: resources, least privilege, wiring, settings, alarms, cdk-nag and cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match


def resources(template: Any, kind: str) -> dict[str, Any]:
    return dict(template.find_resources(kind))


def test_resource_counts(template: Any) -> None:
    functions = {
        k: v
        for k, v in resources(template, "AWS::Lambda::Function").items()
        if "annotation_reconciler" in v["Properties"].get("Handler", "")
    }
    assert sorted(f["Properties"]["Handler"] for f in functions.values()) == [
        "annotation_reconciler.handlers.handle_events",
        "annotation_reconciler.handlers.handle_schedule",
        "annotation_reconciler.handlers.handle_work",
    ]
    template.resource_count_is("AWS::SQS::Queue", 4)
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 2)
    template.resource_count_is("AWS::Events::Rule", 3)
    template.resource_count_is("AWS::CloudWatch::Alarm", 6)
    template.resource_count_is("AWS::SNS::Topic", 1)
    template.resource_count_is("AWS::S3::Bucket", 0)  # the portal bucket is imported, never created
    for fn in functions.values():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.12" and props["TracingConfig"] == {"Mode": "Active"}
        assert "VpcConfig" in props and props["LoggingConfig"]["LogGroup"]


def test_iam_grants_no_s3_write_or_delete_and_scopes_reads(template: Any) -> None:
    actions: list[str] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            actions += listed
            if any(a.startswith("s3:") for a in listed):
                assert statement["Effect"] == "Allow" and set(listed) <= {"s3:ListBucket", "s3:GetObject"}
    s3_actions = {a for a in actions if a.startswith("s3:")}
    assert s3_actions == {"s3:ListBucket", "s3:GetObject"}
    assert not [a for a in actions if a.startswith(("s3:Delete", "s3:Put")) or a in ("s3:*", "*")]
    assert "sqs:SendMessage" in actions and "secretsmanager:GetSecretValue" in actions


def test_event_pattern_and_queue_target(template: Any) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Deleted", "Object Created"],
                "detail": {"bucket": {"name": ["cryoet-data-portal-public"]}},
            },
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [Match.string_like_regexp("EventsQueue"), "Arn"]}})],
        },
    )
    schedules = [
        r["Properties"]
        for r in resources(template, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    assert sorted((s["ScheduleExpression"], json.loads(s["Targets"][0]["Input"])["action"]) for s in schedules) == [
        ("rate(1 day)", "reconcile"),
        ("rate(1 hour)", "purge"),
    ]


def test_dead_letter_queues(template: Any) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    redrives = [q["Properties"]["RedrivePolicy"] for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(redrives) == 2 and all(r["maxReceiveCount"] == 5 for r in redrives)
    dlqs = [q for q in queues.values() if "RedrivePolicy" not in q["Properties"]]
    assert [q["Properties"]["MessageRetentionPeriod"] for q in dlqs] == [14 * 24 * 3600] * 2


def test_batch_settings(template: Any) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 100,
            "MaximumBatchingWindowInSeconds": 20,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 5},
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 2},
        },
    )


def test_environment_is_safe_by_default_and_holds_no_credentials(template: Any) -> None:
    for fn in resources(template, "AWS::Lambda::Function").values():
        env = fn["Properties"].get("Environment", {}).get("Variables")
        if not env or "RECONCILER_BUCKET" not in env:
            continue
        assert env["RECONCILER_DRY_RUN"] == "true" and env["RECONCILER_GRACE_PERIOD_HOURS"] == "72"
        assert env["RECONCILER_MAX_PURGE_FRACTION"] == "0.1"
        assert env["RECONCILER_DB_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
        assert env["RECONCILER_INVENTORY_MANIFEST"].startswith("s3://portal-inventory/")
        assert "RECONCILER_DB_URL" not in env and not any("PASSWORD" in k for k in env)


def test_alarms(template: Any) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "PurgeHeld",
            "Namespace": "AnnotationReconciler",
            "Threshold": 0,
            "AlarmActions": [Match.any_value()],
        },
    )
    names = sorted(a["Properties"]["MetricName"] for a in resources(template, "AWS::CloudWatch::Alarm").values())
    assert names == ["ApproximateNumberOfMessagesVisible"] * 2 + ["Errors"] * 3 + ["PurgeHeld"]


def test_cdk_nag_aws_solutions_passes(synthesized: tuple[Any, Any, Path], template: Any) -> None:
    _app, stack, _out = synthesized
    # the pack ran: each suppression is recorded, with its reason, in the template
    suppressed = template.to_json()["Metadata"]["cdk_nag"]["rules_to_suppress"]
    assert {s["id"] for s in suppressed} >= {"AwsSolutions-IAM5", "AwsSolutions-L1"}
    assert all(len(s["reason"]) > 40 for s in suppressed)
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert [e.entry.data for e in errors] == [] and [w.entry.data for w in warnings] == []


def test_cfn_lint_passes(synthesized: tuple[Any, Any, Path]) -> None:
    template = Path(synthesized[2]) / "AnnotationReconciler.template.json"
    lint = Path(sys.executable).with_name("cfn-lint")
    done = subprocess.run(
        [str(lint), "--non-zero-exit-code", "error", "--", str(template)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"grace_period_hours": 0.5}, "at least 1"),
        ({"max_purge_fraction": 2}, "(0, 1]"),
        ({"dry_run": "flase"}, "true or false"),
        ({"vpc_id": "vpc-1"}, "subnet_ids"),
        ({"log_retention_days": 11}, "must be one of"),
    ],
)
def test_bad_context_is_refused(context: dict[str, Any], message: str, tmp_path: Path) -> None:
    from infra.app import build_app

    with pytest.raises(ValueError, match=None) as info:
        build_app({"aws:cdk:bundling-stacks": [], **context}, outdir=str(tmp_path), nag=False)
    assert message in str(info.value)
