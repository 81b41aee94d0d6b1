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


def functions(template: Any) -> dict[str, Any]:
    return {
        k: v
        for k, v in resources(template, "AWS::Lambda::Function").items()
        if "annotation_reconciler" in v["Properties"].get("Handler", "")
    }


def by_handler(template: Any) -> dict[str, dict[str, Any]]:
    return {v["Properties"]["Handler"].rsplit("_", 1)[1]: {"id": k, **v} for k, v in functions(template).items()}


def test_resource_counts(template: Any) -> None:
    assert sorted(f["Properties"]["Handler"] for f in functions(template).values()) == [
        "annotation_reconciler.handlers.handle_events",
        "annotation_reconciler.handlers.handle_schedule",
        "annotation_reconciler.handlers.handle_work",
    ]
    template.resource_count_is("AWS::SQS::Queue", 6)  # events, work and four dead-letter queues
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 2)
    template.resource_count_is("AWS::Events::Rule", 3)
    template.resource_count_is("AWS::CloudWatch::Alarm", 26)
    template.resource_count_is("AWS::SNS::Topic", 1)
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    template.resource_count_is("AWS::EC2::VPCEndpoint", 3)
    template.resource_count_is("AWS::S3::Bucket", 0)  # the portal bucket is imported, never created


def test_every_function_is_arm64_traced_logged_and_in_the_vpc(template: Any) -> None:
    for fn in functions(template).values():
        props = fn["Properties"]
        assert props["Runtime"] == "python3.12" and props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"} and props["LoggingConfig"]["LogGroup"]
        assert props["VpcConfig"]["SubnetIds"] == ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
        groups = [g["Fn::GetAtt"][0] for g in props["VpcConfig"]["SecurityGroupIds"]]
        assert len(groups) == 1 and groups[0].startswith("LambdaSecurityGroup")
        # created after the endpoints: no cold start before they answer
        assert {d for d in fn["DependsOn"] if "Endpoint" in d} == {
            k for k in resources(template, "AWS::EC2::VPCEndpoint")
        }


def test_the_lambdas_own_security_group_and_the_database_ingress(template: Any) -> None:
    groups = resources(template, "AWS::EC2::SecurityGroup")
    lambda_group = next(k for k in groups if k.startswith("LambdaSecurityGroup"))
    egress = groups[lambda_group]["Properties"]["SecurityGroupEgress"]
    # HTTPS out (to the endpoints, or a NAT); PostgreSQL only to the database's group (below)
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"], e["CidrIp"]) for e in egress] == [
        ("tcp", 443, 443, "0.0.0.0/0")
    ]
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": "sg-0123456789abcdef0",
            "SourceSecurityGroupId": {"Fn::GetAtt": [lambda_group, "GroupId"]},
            "IpProtocol": "tcp",
            "FromPort": 5432,
            "ToPort": 5432,
        },
    )
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupEgress",
        {
            "GroupId": {"Fn::GetAtt": [lambda_group, "GroupId"]},
            "DestinationSecurityGroupId": "sg-0123456789abcdef0",
            "FromPort": 5432,
        },
    )


def test_endpoints_for_s3_sqs_and_secrets_manager(template: Any) -> None:
    endpoints = list(resources(template, "AWS::EC2::VPCEndpoint").values())
    services = {}
    for e in endpoints:
        name = json.dumps(e["Properties"]["ServiceName"])
        kind = next(s for s in ("s3", "sqs", "secretsmanager") if f".{s}" in name)
        services[kind] = e["Properties"]
    assert services["s3"]["VpcEndpointType"] == "Gateway"
    assert services["s3"]["RouteTableIds"] == ["rtb-0aaaaaaaaaaaaaaaa", "rtb-0bbbbbbbbbbbbbbbb"]
    groups = resources(template, "AWS::EC2::SecurityGroup")
    endpoint_group = next(k for k in groups if k.startswith("EndpointSecurityGroup"))
    for kind in ("sqs", "secretsmanager"):
        props = services[kind]
        assert props["VpcEndpointType"] == "Interface" and props["PrivateDnsEnabled"] is True
        assert props["SubnetIds"] == ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
        assert props["SecurityGroupIds"] == [{"Fn::GetAtt": [endpoint_group, "GroupId"]}]
    # the endpoints admit HTTPS from the Lambdas' group, nothing else
    ingress = [
        r["Properties"]
        for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [endpoint_group, "GroupId"]}
    ]
    assert [(i["FromPort"], i["SourceSecurityGroupId"]["Fn::GetAtt"][0][:19]) for i in ingress] == [
        (443, "LambdaSecurityGroup")
    ]
    assert "SecurityGroupIngress" not in groups[endpoint_group]["Properties"]


def test_iam_grants_no_s3_write_or_delete_and_scopes_reads(template: Any) -> None:
    actions: list[str] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            actions += listed
            if any(a.startswith("s3:") for a in listed):
                assert statement["Effect"] == "Allow" and set(listed) <= {"s3:ListBucket", "s3:GetObject"}
            if statement["Resource"] == "*":  # the one wildcard cdk-nag's Resource::* suppression covers
                assert set(listed) == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    s3_actions = {a for a in actions if a.startswith("s3:")}
    assert s3_actions == {"s3:ListBucket", "s3:GetObject"}
    assert not [a for a in actions if a.startswith(("s3:Delete", "s3:Put")) or a in ("s3:*", "*")]
    assert "sqs:SendMessage" in actions and "secretsmanager:GetSecretValue" in actions


def test_event_rule_only_matches_annotation_keys(template: Any) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Deleted", "Object Created"],
                "detail": {
                    "bucket": {"name": ["cryoet-data-portal-public"]},
                    "object": {"key": [{"wildcard": "Annotations/*"}, {"wildcard": "*/Annotations/*"}]},
                },
            },
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [Match.string_like_regexp("EventsQueue"), "Arn"]},
                        "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [Match.string_like_regexp("ObjectRuleDlq"), "Arn"]}},
                    }
                )
            ],
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
    for s in schedules:
        assert s["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("ScheduleDlq")


def test_dead_letter_queues(template: Any) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    redrives = {k: q["Properties"]["RedrivePolicy"] for k, q in queues.items() if "RedrivePolicy" in q["Properties"]}
    assert sorted(k[:10] for k in redrives) == ["EventsQueu", "WorkQueue9"]
    assert all(r["maxReceiveCount"] == 5 for r in redrives.values())
    dlqs = {k: q for k, q in queues.items() if "RedrivePolicy" not in q["Properties"]}
    assert sorted(k.rstrip("0123456789ABCDEF") for k in dlqs) == [
        "EventsDlq",
        "ObjectRuleDlq",
        "ScheduleDlq",
        "WorkDlq",
    ]
    assert [q["Properties"]["MessageRetentionPeriod"] for q in dlqs.values()] == [14 * 24 * 3600] * 4
    # EventBridge may write to the rule DLQs (queue policies for events.amazonaws.com)
    policies = [json.dumps(p["Properties"]) for p in resources(template, "AWS::SQS::QueuePolicy").values()]
    for name in ("ObjectRuleDlq", "ScheduleDlq"):
        assert any(name in p and "events.amazonaws.com" in p for p in policies), name


def test_visibility_is_at_least_six_times_the_timeout_of_every_sqs_fed_function(template: Any) -> None:
    fns = functions(template)
    queues = resources(template, "AWS::SQS::Queue")
    mappings = list(resources(template, "AWS::Lambda::EventSourceMapping").values())
    assert len(mappings) == 2
    for mapping in mappings:
        props = mapping["Properties"]
        fn = fns[props["FunctionName"]["Ref"]]["Properties"]
        queue = queues[props["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
        window = props.get("MaximumBatchingWindowInSeconds", 0)
        assert queue["VisibilityTimeout"] >= 6 * fn["Timeout"] + window, (props["FunctionName"], queue)
    timeouts = {name: f["Properties"]["Timeout"] for name, f in by_handler(template).items()}
    assert timeouts == {"events": 120, "work": 300, "schedule": 900}


def test_reserved_concurrency_caps_what_reaches_the_database(template: Any) -> None:
    reserved = {name: f["Properties"]["ReservedConcurrentExecutions"] for name, f in by_handler(template).items()}
    assert reserved == {"events": 5, "work": 2, "schedule": 2}


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
    for fn in functions(template).values():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["RECONCILER_DRY_RUN"] == "true" and env["RECONCILER_GRACE_PERIOD_HOURS"] == "72"
        assert env["RECONCILER_MAX_PURGE_FRACTION"] == "0.1"
        assert env["RECONCILER_DB_SECRET_ARN"].startswith("arn:aws:secretsmanager:")
        assert env["RECONCILER_INVENTORY_MANIFEST"].startswith("s3://portal-inventory/")
        assert "RECONCILER_DB_URL" not in env and not any("PASSWORD" in k for k in env)


def test_alarms_cover_every_failure_and_notify_the_topic(template: Any) -> None:
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    topic = next(iter(resources(template, "AWS::SNS::Topic")))
    assert all(a["AlarmActions"] == [{"Ref": topic}] for a in alarms)
    names = sorted(a.get("MetricName", "(math)") for a in alarms)
    assert names == sorted(
        ["(math)"] * 2  # the two redrive DLQs: new arrivals
        + ["NumberOfMessagesSent"] * 2  # the two EventBridge DLQs: new arrivals
        + ["ApproximateAgeOfOldestMessage"] * 2  # the events and work queues
        + ["Errors", "Throttles", "Duration"] * 3  # each function
        + ["FailedInvocations"] * 3  # each EventBridge rule
        + ["PurgeHeld", "InventoryStale", "PrefixesBlind", "InventoryUnreadable"]
        + ["HeldWaiting", "PurgeRowsFailed", "QuarantineOverdue", "BlindPrefixes"]  # the waiting gauges
    )
    durations = {
        a["Dimensions"][0]["Value"]["Ref"][:8]: a["Threshold"] for a in alarms if a.get("MetricName") == "Duration"
    }
    assert durations == {"EventsFu": 0.8 * 120_000, "WorkFunc": 0.8 * 300_000, "Schedule": 0.8 * 900_000}
    ages = sorted(a["Threshold"] for a in alarms if a.get("MetricName") == "ApproximateAgeOfOldestMessage")
    assert ages == [3600, 6 * 3600]
    rules = {a["Dimensions"][0]["Value"]["Ref"][:12] for a in alarms if a.get("MetricName") == "FailedInvocations"}
    assert rules == {"ObjectChange", "PurgeSchedul", "ReconcileSch"}
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "PurgeHeld", "Namespace": "AnnotationReconciler", "Threshold": 0},
    )
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.org"})


def test_blind_parts_of_the_detection_alarm_within_a_day(template: Any) -> None:
    """A stale inventory (the scan LISTs instead) and a prefix still unlisted after its retries each alarm."""
    for metric in ("InventoryStale", "PrefixesBlind"):
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": metric,
                "Namespace": "AnnotationReconciler",
                "Statistic": "Sum",
                "Period": 86400,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
            },
        )


def test_dlq_alarms_fire_on_new_arrivals_not_on_depth(template: Any) -> None:
    """Issue 27: one old message kept for the DLQ's 14 days must not hold its alarm in ALARM and hide the next
    failure. A redrive DLQ (SQS moves messages there; its NumberOfMessagesSent does not count them) alarms when
    its depth grows, an idle queue's missing points counting as empty; EventBridge's DLQs on messages sent."""
    alarms = {k: v["Properties"] for k, v in resources(template, "AWS::CloudWatch::Alarm").items()}
    assert not any(a.get("MetricName") == "ApproximateNumberOfMessagesVisible" for a in alarms.values())
    math = {k[:8]: a for k, a in alarms.items() if "Metrics" in a}
    assert sorted(math) == ["EventsDl", "WorkDlqA"]
    for alarm in math.values():
        (expression, depth) = sorted(alarm["Metrics"], key=lambda m: "MetricStat" in m)
        assert expression["Expression"] == "DIFF(FILL(depth, 0))" and expression["ReturnData"] is True
        stat = depth["MetricStat"]
        assert depth["Id"] == "depth" and depth["ReturnData"] is False
        assert stat["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible" and stat["Stat"] == "Maximum"
        assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    queues = {k[:12] for k in resources(template, "AWS::SQS::Queue")}
    sent = [a for a in alarms.values() if a.get("MetricName") == "NumberOfMessagesSent"]
    assert sorted(a["Dimensions"][0]["Value"]["Fn::GetAtt"][0][:12] for a in sent) == sorted(
        q for q in queues if q.startswith(("ObjectRuleDl", "ScheduleDlq"))
    )
    assert all(a["Statistic"] == "Sum" and a["Threshold"] == 0 for a in sent)


def test_every_waiting_state_alarms_while_it_waits(template: Any) -> None:
    """The gauges the purge emits every hour alarm as long as anything waits (Maximum over the hour); an
    unreadable inventory alarms within the day."""
    for metric in ("HeldWaiting", "PurgeRowsFailed", "QuarantineOverdue", "BlindPrefixes"):
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": metric,
                "Namespace": "AnnotationReconciler",
                "Statistic": "Maximum",
                "Period": 3600,
                "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold",
            },
        )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "InventoryUnreadable", "Statistic": "Sum", "Period": 86400, "Threshold": 0},
    )


def test_dashboard_shows_the_lifecycle_queues_and_errors(template: Any) -> None:
    dashboard = next(iter(resources(template, "AWS::CloudWatch::Dashboard").values()))
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "AnnotationsQuarantined",
        "AnnotationsReleased",
        "AnnotationsPurged",
        "AnnotationsHeld",
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "Errors",
        "Throttles",
        "FailedInvocations",
        "HeldWaiting",
        "PurgeRowsFailed",
        "UnknownWaiting",
        "QuarantineOverdue",
        "BlindPrefixes",
    ):
        assert metric in body, metric


def test_cdk_nag_aws_solutions_passes_with_narrow_suppressions(
    synthesized: tuple[Any, Any, Path], template: Any
) -> None:
    _app, stack, _out = synthesized
    assert "cdk_nag" not in template.to_json().get("Metadata", {})  # no stack-wide suppression
    suppressions = [
        s
        for r in template.to_json()["Resources"].values()
        for s in r.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert {s["id"] for s in suppressions} == {
        "AwsSolutions-IAM4",
        "AwsSolutions-IAM5",
        "AwsSolutions-L1",
        "AwsSolutions-SQS3",
        "AwsSolutions-SNS2",
    }
    assert all(len(s["reason"]) > 30 for s in suppressions)
    for s in suppressions:
        if s["id"] in ("AwsSolutions-IAM4", "AwsSolutions-IAM5"):
            assert s["applies_to"], s  # only the listed findings, never the whole rule
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert [e.entry.data for e in errors] == [] and [w.entry.data for w in warnings] == []


def test_a_new_wildcard_is_not_covered_by_the_suppressions(synth_context: dict[str, object], tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from cdk_nag import AwsSolutionsChecks

    from infra.config import StackConfig
    from infra.stack import ReconcilerStack

    app = cdk.App(context=synth_context, outdir=str(tmp_path))
    stack = ReconcilerStack(app, "Widened", config=StackConfig.from_context(app))
    stack.work_fn.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::another-bucket/*"])
    )
    cdk.Aspects.of(app).add(AwsSolutionsChecks())
    app.synth()
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-IAM5"))
    assert errors and "another-bucket" in json.dumps([e.entry.data for e in errors])


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
        ({"subnet_ids": []}, "vpc_id needs subnet_ids"),
        ({"vpc_id": "vpc-1"}, "'vpc-1', which is not an id"),
        ({"log_retention_days": 11}, "must be one of"),
        ({"vpc_id": None}, "vpc_id is not set"),
        ({"allow_no_vpc": "yes please"}, "allow_no_vpc='yes please' must be true or false"),
        ({"route_table_ids": ["rtb-0aaaaaaaaaaaaaaaa"]}, "route_table_ids must give each subnet's route table"),
        ({"existing_endpoints": ["s3", "dynamodb"]}, "not dynamodb"),
        ({"subnet_ids": "subnet-0aaaaaaaaaaaaaaaa"}, "same length"),
        ({"work_max_concurrency": 1}, "within 2..1000"),
        ({"alarm_email": "ops"}, "not an email address"),
        ({"events_batch_size": "many"}, "must be a whole number"),
    ],
)
def test_bad_context_is_refused(
    context: dict[str, Any], message: str, tmp_path: Path, synth_context: dict[str, object]
) -> None:
    from infra.app import build_app

    with pytest.raises(ValueError, match=None) as info:
        build_app({**synth_context, **context}, outdir=str(tmp_path), nag=False)
    assert message in str(info.value)


def test_every_output_the_runbook_reads_exists(template: Any) -> None:
    """README's Deploy runbook reads the stack's outputs by name (`out NAME`): each one must exist."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    used = set(re.findall(r"\$\(out (\w+)\)", readme)) | {
        f"{f}FunctionName" for f in re.findall(r"for f in ([\w ]+); do", readme)[0].split()
    }
    outputs = set(template.to_json()["Outputs"])
    assert used and used <= outputs, used - outputs
    assert {"ScheduleFunctionName", "EventsDlqArn", "ObjectRuleDlqArn", "EventsQueueArn", "DashboardUrl"} <= used
