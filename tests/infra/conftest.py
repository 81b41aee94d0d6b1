"""One synthesized app per test session (jsii starts slowly)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

for _name in ("DEPRECATED_NODE_VERSION", "END_OF_LIFE_NODE_VERSION", "UNTESTED_NODE_VERSION"):
    os.environ.setdefault(f"JSII_SILENCE_WARNING_{_name}", "1")

CONTEXT = {
    "aws:cdk:bundling-stacks": [],  # skip bundling here; test_bundling.py bundles for real
    "vpc_id": "vpc-0123456789abcdef0",
    "vpc_cidr": "10.0.0.0/16",
    "db_ca_bundle": "system",
    "subnet_ids": ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"],
    "availability_zones": ["us-west-2a", "us-west-2b"],
    "route_table_ids": ["rtb-0aaaaaaaaaaaaaaaa", "rtb-0bbbbbbbbbbbbbbbb"],
    "db_security_group_id": "sg-0123456789abcdef0",
    "db_secret": "arn:aws:secretsmanager:us-west-2:123456789012:secret:portal-db-AbCdEf",
    "alarm_email": "ops@example.org",
    "inventory_manifest": "s3://portal-inventory/cryoet-data-portal-public/daily/",
}


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Path]]:
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(CONTEXT, outdir=str(outdir))
    assembly = app.synth()
    stack = app.node.find_child("AnnotationReconciler")
    yield app, stack, outdir
    del assembly


@pytest.fixture(scope="session")
def synth_context() -> dict[str, object]:
    return dict(CONTEXT)


@pytest.fixture(scope="session")
def template(synthesized: tuple[Any, Any, Path]) -> Any:
    from aws_cdk.assertions import Template

    return Template.from_stack(synthesized[1])
