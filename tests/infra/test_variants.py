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


def role_statements(template: Template) -> dict[str, list[dict[str, Any]]]:
    """Each function's role statements (inline and attached), by handler name."""
    roles = template.find_resources("AWS::IAM::Role")
    attached = template.find_resources("AWS::IAM::Policy").values()
    found: dict[str, list[dict[str, Any]]] = {}
    for v in template.find_resources("AWS::Lambda::Function").values():
        if "annotation_reconciler" not in v["Properties"].get("Handler", ""):
            continue
        role = v["Properties"]["Role"]["Fn::GetAtt"][0]
        documents = [p["PolicyDocument"] for p in roles[role]["Properties"].get("Policies", [])]
        documents += [p["Properties"]["PolicyDocument"] for p in attached if {"Ref": role} in p["Properties"]["Roles"]]
        found[v["Properties"]["Handler"].rsplit("_", 1)[1]] = [st for d in documents for st in d["Statement"]]
    return found


def actions_of(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


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
    # outside a VPC no network-interface rights; and a sandbox needs no CA bundle (nothing private to verify)
    statements = [st for sts in role_statements(template).values() for st in sts]
    assert statements and not [a for st in statements for a in actions_of(st) if a.startswith("ec2:")]
    context = {k: v for k, v in without_network(synth_context).items() if k != "db_ca_bundle"}
    synth(tmp_path / "no-bundle", {**context, "allow_no_vpc": "true"})


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
    reads = {
        name: {st["Resource"] for st in statements if "secretsmanager:GetSecretValue" in actions_of(st)}
        for name, statements in role_statements(template).items()
    }
    assert reads == {
        "events": {events_arn},
        "work": {synth_context["db_secret"]},
        "schedule": {synth_context["db_secret"]},
    }
    assert nag_findings(stack) == []


def test_secrets_named_without_an_arn_pass_cdk_nag(tmp_path: Path, synth_context: dict[str, object]) -> None:
    context = {**synth_context, "db_secret": "annotation-reconciler/portal-db", "events_db_secret": "rec/events-db"}
    template, stack = synth(tmp_path, context, nag=True)
    assert nag_findings(stack) == []
    reads = {
        name: [json.dumps(st["Resource"]) for st in statements if "secretsmanager:GetSecretValue" in actions_of(st)]
        for name, statements in role_statements(template).items()
    }
    assert len(reads["events"]) == 1 and ":secret:rec/events-db-??????" in reads["events"][0]
    assert len(reads["work"]) == 1 and ":secret:annotation-reconciler/portal-db-??????" in reads["work"][0]


def test_kms_decrypt_only_on_the_keys_given_and_only_through_the_services_used(
    tmp_path: Path, synth_context: dict[str, object]
) -> None:
    keys = [
        "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:us-west-2:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    ]
    template, stack = synth(tmp_path / "keys", {**synth_context, "kms_key_arns": keys}, nag=True)
    assert nag_findings(stack) == []
    for name, statements in role_statements(template).items():
        kms = [st for st in statements if any(a.startswith("kms:") for a in actions_of(st))]
        assert [actions_of(st) for st in kms] == [["kms:Decrypt"]], name
        assert kms[0]["Resource"] == keys
        services = [json.dumps(s) for s in kms[0]["Condition"]["StringEquals"]["kms:ViaService"]]
        wanted = ["secretsmanager", "s3"] if name == "schedule" else ["secretsmanager"]  # only it reads the inventory
        assert [next(w for w in wanted if f'"{w}.' in s) for s in services] == wanted, (name, services)
    template, _ = synth(tmp_path / "none", synth_context)
    statements = [st for sts in role_statements(template).values() for st in sts]
    assert not [a for st in statements for a in actions_of(st) if a.startswith("kms:")]


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


def own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str) -> dict[str, Any]:
    """An example file as the runbook makes it: copied to infra/env/NAME.json with every placeholder replaced."""
    from infra import environment

    values = json.loads((environment.EXAMPLES_DIR / f"{example}.json").read_text())
    replace = {
        "account": "210987654321",
        "vpc_id": "vpc-0ddddddddddddddd1",
        "subnet_ids": ["subnet-0ddddddddddddddd1", "subnet-0ddddddddddddddd2"],
        "route_table_ids": ["rtb-0ddddddddddddddd1", "rtb-0ddddddddddddddd2"],
        "db_security_group_id": "sg-0ddddddddddddddd1",
        "alarm_email": "oncall@cryoet.invalid",
        "inventory_manifest": "s3://my-inventory/cryoet-data-portal-public/daily/",
        "kms_key_arns": ["arn:aws:kms:us-west-2:210987654321:key/00000000-1111-2222-3333-444444444444"],
    }
    for key in ("db_secret", "events_db_secret"):
        if str(values.get(key, "")).startswith("arn:"):
            replace[key] = values[key].replace("123456789012", "210987654321")
    pem = tmp_path / "rds-global-bundle.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    replace["db_ca_bundle"] = str(pem)
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    monkeypatch.setattr(environment, "ENV_DIR", env_dir)
    (env_dir / "unchanged.json").write_text(json.dumps(values))
    own = {k: replace.get(k, v) if k in values else v for k, v in values.items()}
    (env_dir / "mine.json").write_text(json.dumps(own))
    return own


@pytest.mark.parametrize("example", ["staging", "production"])
def test_each_example_is_refused_until_its_placeholders_are_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str
) -> None:
    values = own_environment(tmp_path, monkeypatch, example)
    with pytest.raises(ValueError) as refused:
        synth(tmp_path / "o1", {"env": "unchanged"})
    for key in (
        "account",
        "db_secret",
        "vpc_id",
        "subnet_ids",
        "route_table_ids",
        "db_security_group_id",
        "alarm_email",
    ):
        assert f"{key} holds " in str(refused.value) and f"examples/{example}.json" in str(refused.value), key
    template, stack = synth(tmp_path / "o2", {"env": "mine"}, nag=True)
    assert stack.stack_name == values["stack_name"]
    assert (stack.account, stack.region) == (values["account"], values["region"])
    props = fn_props(template)
    assert all(p["VpcConfig"]["SubnetIds"] == values["subnet_ids"] for p in props.values())
    assert all(p["Environment"]["Variables"]["RECONCILER_DRY_RUN"] == "true" for p in props.values())
    assert all("RECONCILER_DB_CA_BUNDLE" in p["Environment"]["Variables"] for p in props.values())
    expected = 3 - len(values["existing_endpoints"])
    template.resource_count_is("AWS::EC2::VPCEndpoint", expected)
    assert nag_findings(stack) == []
    cfn_lint(tmp_path / "o2" / f"{values['stack_name']}.template.json")


def test_a_command_line_value_that_contradicts_the_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_environment(tmp_path, monkeypatch, "production")
    with pytest.raises(ValueError, match=r"dry_run is 'true' in mine.json but 'false' on the command line"):
        synth(tmp_path / "a", {"env": "mine", "dry_run": "false"})
    template, _ = synth(tmp_path / "b", {"env": "mine", "dry_run": "true", "work_max_concurrency": 3})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {"ScalingConfig": {"MaximumConcurrency": 3}})


def test_bad_environment_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import environment

    env_dir = tmp_path / "infra" / "env"
    env_dir.mkdir(parents=True)
    (env_dir / "typo.json").write_text(json.dumps({"allow_no_vpc": True, "dryrun": False}))
    (env_dir / "broken.json").write_text("{")
    (env_dir / "badaccount.json").write_text(json.dumps({"allow_no_vpc": True, "account": "1234"}))
    monkeypatch.setattr(environment, "ENV_DIR", env_dir)
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
