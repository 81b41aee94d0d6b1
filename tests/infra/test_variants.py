"""The stack under other contexts: no VPC, a NAT, existing endpoints, per-Lambda secrets, the owned
bucket, and the committed environment files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match, Template

NO_BUNDLING = {"aws:cdk:bundling-stacks": []}


def synth(tmp_path: Path, context: dict[str, Any], *, nag: bool = False) -> tuple[Template, Any]:
    import aws_cdk as cdk

    from infra.app import build_app

    app = build_app({**NO_BUNDLING, **context}, outdir=str(tmp_path), nag=nag)
    app.synth()
    stack = next(c for c in app.node.children if isinstance(c, cdk.Stack))
    return Template.from_stack(stack), stack


def nag_findings(stack: Any) -> list[Any]:
    found = Annotations.from_stack(stack)
    pattern = Match.string_like_regexp("AwsSolutions-.*")
    return [e.entry.data for e in found.find_error("*", pattern) + found.find_warning("*", pattern)]


def cfn_lint(template_file: Path) -> None:
    lint = Path(sys.executable).with_name("cfn-lint")
    done = subprocess.run(
        [str(lint), "--non-zero-exit-code", "error", "--", str(template_file)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def kinds(template: Template) -> list[str]:
    return [r["Type"] for r in template.to_json()["Resources"].values()]


def fn_props(template: Template) -> dict[str, dict[str, Any]]:
    return {
        v["Properties"]["Handler"].rsplit("_", 1)[1]: v["Properties"]
        for v in template.find_resources("AWS::Lambda::Function").values()
        if "annotation_reconciler" in v["Properties"].get("Handler", "")
    }


def without_network(context: dict[str, object]) -> dict[str, object]:
    network = ("vpc_id", "subnet_ids", "availability_zones", "route_table_ids", "db_security_group_id")
    return {k: v for k, v in context.items() if k not in network}


def test_a_sandbox_without_a_vpc_needs_allow_no_vpc(tmp_path: Path, synth_context: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"vpc_id is not set.*allow_no_vpc=true"):
        synth(tmp_path / "refused", without_network(synth_context))
    template, stack = synth(tmp_path / "sandbox", {**without_network(synth_context), "allow_no_vpc": "true"}, nag=True)
    assert all("VpcConfig" not in p for p in fn_props(template).values())
    assert not {"AWS::EC2::SecurityGroup", "AWS::EC2::VPCEndpoint"} & set(kinds(template))
    assert nag_findings(stack) == []


def test_behind_a_nat_no_endpoints_are_created(tmp_path: Path, synth_context: dict[str, object]) -> None:
    context = {k: v for k, v in synth_context.items() if k != "route_table_ids"}
    template, _ = synth(tmp_path, {**context, "vpc_has_nat": True})
    assert "AWS::EC2::VPCEndpoint" not in kinds(template)
    assert all(p["VpcConfig"]["SubnetIds"] for p in fn_props(template).values())


def test_existing_endpoints_are_not_created_again(tmp_path: Path, synth_context: dict[str, object]) -> None:
    context = {k: v for k, v in synth_context.items() if k != "route_table_ids"}  # not needed without an S3 endpoint
    template, _ = synth(tmp_path / "some", {**context, "existing_endpoints": "s3,sqs"})
    endpoints = list(template.find_resources("AWS::EC2::VPCEndpoint").values())
    assert len(endpoints) == 1 and "secretsmanager" in json.dumps(endpoints[0]["Properties"]["ServiceName"])
    template, _ = synth(tmp_path / "all", {**context, "existing_endpoints": ["s3", "sqs", "secretsmanager"]})
    assert "AWS::EC2::VPCEndpoint" not in kinds(template)


def test_without_the_database_group_postgres_egress_is_open_and_no_ingress_is_added(
    tmp_path: Path, synth_context: dict[str, object]
) -> None:
    context = {k: v for k, v in synth_context.items() if k != "db_security_group_id"}
    template, _ = synth(tmp_path, {**context, "security_group_id": "sg-0fedcba9876543210"})
    group = next(v for k, v in template.find_resources("AWS::EC2::SecurityGroup").items() if k.startswith("Lambda"))
    assert sorted(e["FromPort"] for e in group["Properties"]["SecurityGroupEgress"]) == [443, 5432]
    ingress = [r["Properties"]["GroupId"] for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()]
    assert "sg-0fedcba9876543210" not in ingress and all(isinstance(g, dict) for g in ingress)
    for props in fn_props(template).values():  # the existing group is attached as well
        assert "sg-0fedcba9876543210" in props["VpcConfig"]["SecurityGroupIds"]


def test_the_events_lambda_can_have_its_own_secret(tmp_path: Path, synth_context: dict[str, object]) -> None:
    events_arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:portal-db-events-GhIjKl"
    template, stack = synth(tmp_path, {**synth_context, "events_db_secret": events_arn}, nag=True)
    props = fn_props(template)
    assert props["events"]["Environment"]["Variables"]["RECONCILER_DB_SECRET_ARN"] == events_arn
    assert props["work"]["Environment"]["Variables"]["RECONCILER_DB_SECRET_ARN"] == synth_context["db_secret"]
    reads: dict[str, set[str]] = {}
    for key, policy in template.find_resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "secretsmanager:GetSecretValue" in statement["Action"]:
                reads.setdefault(key[:6], set()).add(statement["Resource"])
    assert reads == {
        "Events": {events_arn},
        "WorkFu": {synth_context["db_secret"]},
        "Schedu": {synth_context["db_secret"]},
    }
    assert nag_findings(stack) == []


def test_secrets_named_without_an_arn_pass_cdk_nag(tmp_path: Path, synth_context: dict[str, object]) -> None:
    context = {**synth_context, "db_secret": "annotation-reconciler/portal-db", "events_db_secret": "rec/events-db"}
    _, stack = synth(tmp_path, context, nag=True)
    assert nag_findings(stack) == []


def test_reserved_concurrency_can_be_left_to_the_account(tmp_path: Path, synth_context: dict[str, object]) -> None:
    template, _ = synth(tmp_path, {**synth_context, "reserve_concurrency": False})
    assert all("ReservedConcurrentExecutions" not in p for p in fn_props(template).values())


def test_the_alarm_topic_exists_without_an_email(tmp_path: Path, synth_context: dict[str, object]) -> None:
    template, _ = synth(tmp_path, {k: v for k, v in synth_context.items() if k != "alarm_email"})
    template.resource_count_is("AWS::SNS::Topic", 1)
    template.resource_count_is("AWS::SNS::Subscription", 0)
    assert all(a["Properties"]["AlarmActions"] for a in template.find_resources("AWS::CloudWatch::Alarm").values())


def test_a_key_prefix_narrows_the_rule_and_is_escaped(tmp_path: Path, synth_context: dict[str, object]) -> None:
    template, _ = synth(tmp_path, {**synth_context, "key_prefix": "portal*/"})
    rule = next(r for r in template.find_resources("AWS::Events::Rule").values() if "EventPattern" in r["Properties"])
    assert rule["Properties"]["EventPattern"]["detail"]["object"]["key"] == [
        {"wildcard": "portal\\*/Annotations/*"},
        {"wildcard": "portal\\*/*/Annotations/*"},
    ]


def test_owned_bucket_sends_its_events_through_the_filtered_rule(
    tmp_path: Path, synth_context: dict[str, object]
) -> None:
    context = {**without_network(synth_context), "allow_no_vpc": True, "owned_bucket": True, "bucket_name": "sandbox-b"}
    template, stack = synth(tmp_path, context, nag=True)
    template.has_resource_properties(
        "AWS::S3::Bucket", {"NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}}
    )
    assert "Custom::S3BucketNotifications" not in kinds(template)  # no notification Lambda
    cfn_lint(tmp_path / "AnnotationReconciler.template.json")
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like(
                {
                    "detail": {
                        "bucket": {"name": ["sandbox-b"]},
                        "object": {"key": [{"wildcard": "Annotations/*"}, {"wildcard": "*/Annotations/*"}]},
                    }
                }
            )
        },
    )
    assert nag_findings(stack) == []


@pytest.mark.parametrize("name", ["staging", "production"])
def test_each_committed_environment_synthesizes_clean(tmp_path: Path, name: str) -> None:
    values = json.loads((Path(__file__).resolve().parents[2] / "infra" / "env" / f"{name}.json").read_text())
    template, stack = synth(tmp_path, {"env": name}, nag=True)
    assert stack.stack_name == values["stack_name"]
    assert (stack.account, stack.region) == (values["account"], values["region"])
    props = fn_props(template)
    assert all(p["VpcConfig"]["SubnetIds"] == values["subnet_ids"] for p in props.values())
    assert all(p["Environment"]["Variables"]["RECONCILER_DRY_RUN"] == "true" for p in props.values())
    expected = 3 - len(values["existing_endpoints"])
    template.resource_count_is("AWS::EC2::VPCEndpoint", expected)
    assert nag_findings(stack) == []
    cfn_lint(tmp_path / f"{values['stack_name']}.template.json")


def test_a_command_line_value_that_contradicts_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dry_run is 'true' in production.json but 'false' on the command line"):
        synth(tmp_path / "a", {"env": "production", "dry_run": "false"})
    template, _ = synth(tmp_path / "b", {"env": "production", "dry_run": "true", "work_max_concurrency": 3})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {"ScalingConfig": {"MaximumConcurrency": 3}})


def test_bad_environment_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import config

    env_dir = tmp_path / "infra" / "env"
    env_dir.mkdir(parents=True)
    (env_dir / "typo.json").write_text(json.dumps({"allow_no_vpc": True, "dryrun": False}))
    (env_dir / "broken.json").write_text("{")
    (env_dir / "badaccount.json").write_text(json.dumps({"allow_no_vpc": True, "account": "1234"}))
    monkeypatch.setattr(config, "ENV_DIR", env_dir)
    with pytest.raises(ValueError, match=r"typo\.json sets 'dryrun', which is no context key"):
        synth(tmp_path / "o1", {"env": "typo"})
    with pytest.raises(ValueError, match=r"broken\.json is not JSON"):
        synth(tmp_path / "o2", {"env": "broken"})
    with pytest.raises(ValueError, match="account='1234' is not a 12-digit AWS account id"):
        synth(tmp_path / "o3", {"env": "badaccount"})
    with pytest.raises(ValueError, match=r"env='nowhere': there is no .*nowhere.json \(available: badaccount, broken"):
        synth(tmp_path / "o4", {"env": "nowhere"})
    with pytest.raises(ValueError, match="not an environment name"):
        synth(tmp_path / "o5", {"env": "../etc/passwd"})


def test_the_database_ca_bundle_is_bundled_and_named_to_every_function(
    tmp_path: Path, synth_context: dict[str, object]
) -> None:
    """RDS signs its certificates with its own CA: the runbook downloads the bundle, the stack ships it."""
    from infra.bundling import CA_BUNDLE_NAME, asset_hash
    from infra.config import ContextError

    pem = tmp_path / "rds-global-bundle.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    template, _ = synth(tmp_path / "with", {**synth_context, "db_ca_bundle": str(pem)})
    for props in fn_props(template).values():
        assert props["Environment"]["Variables"]["RECONCILER_DB_CA_BUNDLE"] == f"/var/task/{CA_BUNDLE_NAME}"
    without, _ = synth(tmp_path / "without", synth_context)
    assert all("RECONCILER_DB_CA_BUNDLE" not in p["Environment"]["Variables"] for p in fn_props(without).values())
    assert asset_hash(ca_bundle=pem) != asset_hash()  # a new bundle file redeploys the code
    with pytest.raises(ContextError, match=r"db_ca_bundle='infra/certs/missing\.pem' is not a file"):
        synth(tmp_path / "missing", {**synth_context, "db_ca_bundle": "infra/certs/missing.pem"})
