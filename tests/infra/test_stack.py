"""The synthesized stack: resources, least privilege, wiring, settings, alarms, cdk-nag and cfn-lint."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match

from annotation_reconciler.settings import KNOWN_VARIABLES


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
    # private DNS answers for the whole VPC: the endpoints admit HTTPS from its CIDR, so no other workload is cut off
    ingress = groups[endpoint_group]["Properties"]["SecurityGroupIngress"]
    assert [(i["IpProtocol"], i["FromPort"], i["ToPort"], i["CidrIp"]) for i in ingress] == [
        ("tcp", 443, 443, "10.0.0.0/16")
    ]
    assert not [
        r
        for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [endpoint_group, "GroupId"]}
    ]


def render(value: Any) -> Any:
    """A template value as text: ``${Logical.Attr}`` for GetAtt, ``${Logical}`` for Ref (logical ids without their
    hash), Fn::Join joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [render(v) for v in value]
    if "Ref" in value:
        return "${" + re.sub(r"[0-9A-F]{8}$", "", value["Ref"]) + "}"
    if "Fn::GetAtt" in value:
        logical, attribute = value["Fn::GetAtt"]
        return "${" + re.sub(r"[0-9A-F]{8}$", "", logical) + "." + attribute + "}"
    if "Fn::Join" in value:
        return "".join(render(v) for v in value["Fn::Join"][1])
    raise AssertionError(f"unexpected template value {value}")


Statement = tuple[tuple[str, ...], tuple[str, ...], str]


def statements_by_function(template: Any) -> dict[str, set[Statement]]:
    """Every Allow statement each function's role holds (inline and attached policies), normalized."""
    roles = resources(template, "AWS::IAM::Role")
    attached = resources(template, "AWS::IAM::Policy")
    found: dict[str, set[Statement]] = {}
    for name, fn in by_handler(template).items():
        role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
        assert "ManagedPolicyArns" not in roles[role]["Properties"], name  # no managed policy (logs:* on *)
        documents = [p["PolicyDocument"] for p in roles[role]["Properties"].get("Policies", [])]
        documents += [
            p["Properties"]["PolicyDocument"] for p in attached.values() if {"Ref": role} in p["Properties"]["Roles"]
        ]
        found[name] = set()
        for document in documents:
            for st in document["Statement"]:
                assert st["Effect"] == "Allow"
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                listed = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                condition = json.dumps(render_condition(st.get("Condition", {})), sort_keys=True)
                found[name].add((tuple(sorted(actions)), tuple(sorted(render(r) for r in listed)), condition))
    return found


def render_condition(condition: dict[str, Any]) -> dict[str, Any]:
    return {op: {k: render(v) for k, v in tests.items()} for op, tests in condition.items()}


LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")
ENI = tuple(
    sorted(
        [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSubnets",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
        ]
    )
)
XRAY = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")
CONSUME = ("sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage")
SECRET = "arn:aws:secretsmanager:us-west-2:123456789012:secret:portal-db-AbCdEf"
PORTAL = "arn:${AWS::Partition}:s3:::cryoet-data-portal-public"
INVENTORY = "arn:${AWS::Partition}:s3:::portal-inventory"


def expected(*rows: tuple[tuple[str, ...], str, dict[str, Any] | None]) -> set[Statement]:
    return {(tuple(sorted(a)), (r,), json.dumps(c or {}, sort_keys=True)) for a, r, c in rows}


#: Every statement of every function: what its code calls (and Lambda with its role), on its own resources.
EXPECTED_STATEMENTS = {
    "events": expected(
        (LOGS, "${EventsFunctionLogs.Arn}", None),
        (("secretsmanager:GetSecretValue",), SECRET, None),
        (CONSUME, "${EventsQueue.Arn}", None),
        (ENI, "*", None),
        (XRAY, "*", None),
    ),
    "work": expected(
        (LOGS, "${WorkFunctionLogs.Arn}", None),
        (("secretsmanager:GetSecretValue",), SECRET, None),
        (CONSUME, "${WorkQueue.Arn}", None),
        (("sqs:SendMessage",), "${WorkQueue.Arn}", None),
        (("s3:ListBucket",), PORTAL, None),
        (ENI, "*", None),
        (XRAY, "*", None),
    ),
    "schedule": expected(
        (LOGS, "${ScheduleFunctionLogs.Arn}", None),
        (("secretsmanager:GetSecretValue",), SECRET, None),
        (("sqs:SendMessage",), "${WorkQueue.Arn}", None),
        (("s3:ListBucket",), PORTAL, None),
        (("s3:ListBucket",), INVENTORY, {"StringLike": {"s3:prefix": ["cryoet-data-portal-public/daily/*"]}}),
        (("s3:GetObject",), f"{INVENTORY}/cryoet-data-portal-public/daily/*", None),
        (ENI, "*", None),
        (XRAY, "*", None),
    ),
}


def test_each_function_holds_exactly_the_statements_of_the_table(template: Any) -> None:
    """No s3:GetObject on the portal bucket (the code only lists it), no DescribeSecret, no logs on *, no KMS
    without kms_key_arns, no ChangeMessageVisibility or GetQueueUrl: the policies are the table, nothing more."""
    found = statements_by_function(template)
    for name, rows in EXPECTED_STATEMENTS.items():
        assert found[name] == rows, (name, found[name] - rows, rows - found[name])


def test_the_portal_bucket_is_only_listed_by_the_code(template: Any) -> None:
    """The table above gives the portal bucket ListBucket only: that holds only while the Lambdas' code reads no
    object of it. Every GetObject call in the package is in the inventory reader (the inventory's bucket)."""
    package = Path(__file__).resolve().parents[2] / "lambdas" / "annotation_reconciler"
    readers = set()
    for path in package.rglob("*.py"):
        if "local" in path.parts or "db_import" in path.parts or path.parts[-2] == "cli":
            continue  # operators' and test tools, never in a Lambda's path
        text = path.read_text()
        if re.search(r"\.get_object\(|get_json\(|get_bytes\(|head_object\(", text):
            readers.add(path.relative_to(package).as_posix())
    assert readers == {"storage/inventory.py", "storage/s3.py"}, readers
    inventory = (package / "storage" / "inventory.py").read_text()
    assert "S3Storage(client, location.bucket)" in inventory and "manifest.destination_bucket" in inventory


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
        # every variable is one the settings know: an unknown one stops the Lambda at cold start
        assert {k for k in env if k.startswith("RECONCILER_")} <= KNOWN_VARIABLES


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
        + ["AnnotationsHeld", "InventoryStale", "PrefixesBlind", "InventoryUnreadable"]
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
        {"MetricName": "AnnotationsHeld", "Namespace": "AnnotationReconciler", "Threshold": 0},
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
        "AwsSolutions-IAM5",
        "AwsSolutions-L1",
        "AwsSolutions-SQS3",
        "AwsSolutions-SNS2",
    }
    assert all(len(s["reason"]) > 30 for s in suppressions)
    named = ("EventsFunction", "WorkFunction", "ScheduleFunction", "Dlq", "AlarmTopic", "Bucket")
    for logical, r in template.to_json()["Resources"].items():
        for s in r.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            # each reason names the resource it is on
            assert any(n in s["reason"] and n in logical for n in named), (logical, s["reason"])
            if s["id"] == "AwsSolutions-IAM5":
                assert len(s["applies_to"]) == 1, s  # one finding, one reason; never the whole rule
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
        # synth refuses what cannot work, by name
        ({"db_ca_bundle": None}, "db_ca_bundle is not set"),
        ({"db_max_connections": 30}, "9 containers x 4 connections each = 36, above db_max_connections=30"),
        ({"events_max_concurrency": 100, "db_max_connections": 200}, "= 416, above db_max_connections=200"),
        ({"db_max_connections": "lots"}, "db_max_connections='lots' must be a whole number"),
        ({"vpc_cidr": None}, "vpc_cidr is not set: the sqs and secretsmanager interface endpoints"),
        ({"vpc_cidr": "10.0.0.0/33"}, "not an IPv4 CIDR"),
        ({"kms_key_arns": ["arn:aws:kms:us-west-2:123456789012:alias/db"]}, "not a key ARN"),
        (
            {"vpc_id": "vpc-0a1b2c3d4e5f60001"},
            "vpc_id holds 'vpc-0a1b2c3d4e5f60001', the placeholder of infra/env/examples/staging.json",
        ),
        ({"account": "123456789012"}, "account holds '123456789012', the placeholder of infra/env/examples/"),
        (
            {"subnet_ids": ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0f1e2d3c4b5a60012"]},
            "subnet_ids holds 'subnet-0f1e2d3c4b5a60012', the placeholder of infra/env/examples/production.json",
        ),
        ({"alarm_email": "cryoet-reconciler-oncall@example.org"}, "alarm_email holds"),
    ],
)
def test_bad_context_is_refused(
    context: dict[str, Any], message: str, tmp_path: Path, synth_context: dict[str, object]
) -> None:
    from infra.app import build_app

    with pytest.raises(ValueError, match=None) as info:
        build_app({**synth_context, **context}, outdir=str(tmp_path), nag=False)
    assert message in str(info.value)


def test_the_connection_budget_counts_the_pool_make_engine_builds() -> None:
    """db_max_connections is checked against CONNECTIONS_PER_CONTAINER: it must be what an engine may open."""
    from annotation_reconciler.db import make_engine
    from infra.config import CONNECTIONS_PER_CONTAINER

    engine = make_engine("postgresql+pg8000://u@localhost:1/db")
    pool: Any = engine.pool
    assert pool.size() + pool._max_overflow == CONNECTIONS_PER_CONTAINER
    engine.dispose()


def test_every_output_the_runbook_reads_exists(template: Any) -> None:
    """README's Deploy runbook reads the stack's outputs by name (`out NAME`): each one must exist."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    used = set(re.findall(r"\$\(out (\w+)\)", readme)) | {
        f"{f}FunctionName" for f in re.findall(r"for f in ([\w ]+); do", readme)[0].split()
    }
    used |= set(re.findall(r"for id in ([\w ]+); do", readme)[0].split())
    outputs = set(template.to_json()["Outputs"])
    assert used and used <= outputs, used - outputs
    assert {"ScheduleFunctionName", "EventsDlqArn", "ObjectRuleDlqArn", "EventsQueueArn", "DashboardUrl"} <= used
    assert {"EventsSourceMappingId", "WorkSourceMappingId"} <= used  # the pause switch


#: Variables a shell has without the runbook setting them.
SHELL_VARIABLES = {"PWD", "HOME", "USER", "PATH"}


def test_every_runbook_command_parses_and_uses_only_variables_set_before_it(tmp_path: Path) -> None:
    """README's Deploy commands, in order: each block is valid bash, and each $VARIABLE was set by an earlier
    command of the runbook (an assignment, a for loop, a read): nothing needs knowledge the runbook does not give."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme[readme.index("## Deploy") :], re.DOTALL)
    defined = set(SHELL_VARIABLES)
    for number, block in enumerate(blocks):
        script = tmp_path / f"block{number}.sh"
        script.write_text(block)
        parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        assert parsed.returncode == 0, (block, parsed.stderr)
        for line in block.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line)  # comments
            unquoted = re.sub(r"'[^']*'", "''", line)  # single quotes expand nothing (jq's $vars, SQL)
            local = set(re.findall(r"\bfor (\w+) in\b", line))
            local |= set(re.findall(r"\bread -\w+ (?:'[^']*' )?(\w+)", line))
            used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", unquoted)) - local
            assert used <= defined, (line, used - defined)
            defined |= local | set(re.findall(r"(?:^|[\s;(]|export )([A-Z_][A-Z0-9_]*)=", line))
    assert {"REGION", "DBHOST", "CA", "BASTION", "TUNNEL", "RECONCILER_PASSWORD", "STACK"} <= defined


def test_the_runbook_has_none_of_the_known_traps() -> None:
    """README's Deploy section: TLS verified (never sslmode=require), psql stops at the first error, what it
    creates is added to git, the pause switch is the mapping (not reserved concurrency 0), the schedule Lambda is
    not asked to migrate, the examples are copied from infra/env/examples/."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    deploy = readme[readme.index("## Deploy") :]
    assert "sslmode=require" not in deploy and "sslmode=verify-full sslrootcert=$CA" in deploy
    # every SQL goes through owner_psql, which stops at the first error
    definition = deploy[deploy.index("owner_psql() {") :]
    assert "-v ON_ERROR_STOP=1" in definition[: definition.index("}")]
    commands = "".join(re.findall(r"```bash\n(.*?)```", deploy, re.DOTALL))
    bare = [line for line in commands.splitlines() if re.search(r"(?<![_\w])psql ", line)]
    assert bare == [line for line in commands.splitlines() if "owner_psql() {" in line], bare
    assert len(re.findall(r"^owner_psql ", commands, re.MULTILINE)) >= 3
    assert "CREATE ROLE annotation_reconciler LOGIN" in deploy
    assert "git add infra/env/$ENV.json infra/certs/*.pem" in deploy
    assert "cp infra/env/examples/staging.json infra/env/$ENV.json" in deploy
    assert "--no-enabled" in deploy and "--reserved-concurrent-executions 0" not in deploy
    assert '"action": "migrate"' not in deploy
    assert "AWS-StartPortForwardingSessionToRemoteHost" in deploy and "RECONCILER_DB_TLS_SERVER_NAME=$DBHOST" in deploy
    assert "annotation-reconciler status --db-url" in deploy and "Node.js 22 or 24" in deploy
