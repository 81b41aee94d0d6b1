"""The Lambda asset is bundled locally (no Docker) and holds everything the handlers import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest


def test_bundled_asset_imports_the_handlers(tmp_path: Path, synth_context: dict[str, object]) -> None:
    from infra.app import build_app

    context = {k: v for k, v in synth_context.items() if k != "aws:cdk:bundling-stacks"}
    build_app(context, outdir=str(tmp_path), nag=False).synth()
    manifest = json.loads((tmp_path / "AnnotationReconciler.assets.json").read_text())
    assets = {f["source"]["path"] for f in manifest["files"].values() if f["source"].get("packaging") == "zip"}
    assert len(assets) == 1, assets  # the three functions share one asset
    asset = tmp_path / assets.pop()
    for package in ("sqlalchemy", "pg8000", "aws_lambda_powertools", "alembic", "annotation_reconciler"):
        assert (asset / package).is_dir(), package
    # no second botocore (nor boto3, s3transfer, the X-Ray SDK that pulled botocore in): the runtime's own are used
    for shadow in ("boto3", "botocore", "s3transfer", "aws_xray_sdk"):
        assert not (asset / shadow).exists(), shadow
    assert not (asset / "annotation_reconciler" / "local").exists()  # test-only code stays out
    assert (
        asset / "annotation_reconciler" / "ledger" / "migrations" / "versions"
    ).is_dir()  # the package whole (head_revision() below reads it)
    # every compiled extension is for arm64 (ELF e_machine 183, AArch64)
    extensions = list(asset.rglob("*.so"))
    assert extensions and all(int.from_bytes(p.read_bytes()[18:20], "little") == 183 for p in extensions), extensions
    size = sum(p.stat().st_size for p in asset.rglob("*") if p.is_file())
    assert size < 35 * 2**20, f"the bundle grew to {size / 2**20:.1f} MiB"
    # What the Lambda python runtime itself provides (boto3 and its pure-Python dependencies), nothing more
    provided = tmp_path / "lambda-runtime"
    provided.mkdir()
    for name in ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py"):
        source = Path(boto3.__file__).parent.parent / name
        (provided / name).symlink_to(source)
    python = shutil.which("python3.12") or sys.executable  # the Lambda runtime's version when present
    probe = (
        "import annotation_reconciler.handlers as h, sqlalchemy, pg8000, botocore; "
        "from annotation_reconciler.ledger import migrate; "
        f"assert botocore.__file__.startswith({str(provided)!r}), botocore.__file__; "
        "print(h.handle_events.__name__, h.handle_schedule.__name__, h.handle_work.__name__, migrate.head_revision())"
    )
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{asset}:{provided}",
        "PYTHONNOUSERSITE": "1",
        "AWS_DEFAULT_REGION": "us-west-2",
        "PYENV_VERSION": "3.12.1",
    }
    done = subprocess.run(
        [python, "-S", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[:3] == ["handle_events", "handle_schedule", "handle_work"]
    assert done.stdout.split()[3].startswith("0")  # the newest ledger migration, found inside the bundle


def test_cdk_cli_synthesizes_offline(tmp_path: Path) -> None:
    """`make synth` with the pinned npm CLI; every proxy points at a closed port, so any network call would fail.

    The locked wheels are fetched (hash-checked) into build/lambda-deps once, beforehand: that is
    pip's cache, not the synth's business; the synth itself looks nothing up.
    """
    from infra.bundling import dependencies_dir

    dependencies_dir()
    root = Path(__file__).resolve().parents[2]
    install = subprocess.run(["make", "-s", ".cdk-cli/node_modules/.bin/cdk"], cwd=root, capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    # ENV=none: every setting from -c (the example files' placeholder ids would be refused)
    context = {
        "stack_name": "AnnotationReconciler-ci",
        "vpc_id": "vpc-0123456789abcdef0",
        "vpc_cidr": "10.0.0.0/16",
        "subnet_ids": "subnet-0aaaaaaaaaaaaaaaa,subnet-0bbbbbbbbbbbbbbbb",
        "availability_zones": "us-west-2a,us-west-2b",
        "route_table_ids": "rtb-0aaaaaaaaaaaaaaaa,rtb-0bbbbbbbbbbbbbbbb",
        "db_ca_bundle": "system",
    }
    args = f"-o {tmp_path} " + " ".join(f"-c {k}={v}" for k, v in context.items())
    # whatever Node this machine has (test_toolchain.py checks that make refuses the ones jsii does not support)
    node = subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True)
    nodes = f"NODE_VERSIONS={node.stdout.strip()}"
    done = subprocess.run(
        ["make", "-s", "synth", "ENV=none", nodes, f"CDK_ARGS={args}"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    template = json.loads((tmp_path / "AnnotationReconciler-ci.template.json").read_text())
    handlers = sorted(
        r["Properties"]["Handler"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    )
    assert handlers == [f"annotation_reconciler.handlers.handle_{n}" for n in ("events", "schedule", "work")]
    # without ENV, make synth names what it needs instead of guessing
    unnamed = subprocess.run(["make", "-s", "synth"], cwd=root, capture_output=True, text=True, env=env)
    assert unnamed.returncode != 0 and "make synth needs ENV=" in unnamed.stdout + unnamed.stderr
    # ENV=none: no file, and without a VPC the synth is refused with a message that names it
    refused = subprocess.run(
        ["make", "-s", "synth", "ENV=none", nodes, f"CDK_ARGS=-o {tmp_path}"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
    )
    assert refused.returncode != 0 and "vpc_id is not set" in refused.stderr


def test_changing_the_requirements_or_the_platform_changes_the_asset_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synth_context: dict[str, object]
) -> None:
    from infra import bundling
    from infra.app import build_app

    def template_hash(out: Path) -> str:
        build_app(synth_context, outdir=str(out), nag=False).synth()  # bundling skipped: the hash is ours
        manifest = json.loads((out / "AnnotationReconciler.assets.json").read_text())
        return next(k for k, f in manifest["files"].items() if f["source"].get("packaging") == "zip")

    original = template_hash(tmp_path / "a")
    assert template_hash(tmp_path / "b") == original  # stable for the same inputs
    changed = tmp_path / "lambda-requirements.txt"
    changed.write_text(bundling.REQUIREMENTS.read_text().replace("pg8000==1.31.6", "pg8000==1.31.5"))
    assert "pg8000==1.31.5" in changed.read_text()
    monkeypatch.setattr(bundling, "REQUIREMENTS", changed)
    assert template_hash(tmp_path / "c") != original
    monkeypatch.undo()
    monkeypatch.setattr(bundling, "PLATFORM", tuple(a.replace("aarch64", "x86_64") for a in bundling.PLATFORM))
    assert template_hash(tmp_path / "d") != original


def test_the_lock_pins_every_package_with_hashes_and_no_runtime_package(tmp_path: Path) -> None:
    from infra.bundling import REQUIREMENTS, BundlingError, dependencies_dir

    pins = [line for line in REQUIREMENTS.read_text().splitlines() if line and not line.startswith((" ", "#"))]
    assert pins and all("==" in p and p.endswith("\\") for p in pins), pins  # each pin continues with its hashes
    names = {p.split("==")[0] for p in pins}
    assert {"sqlalchemy", "pg8000", "alembic", "aws-lambda-powertools"} <= names
    assert not names & {"boto3", "botocore", "s3transfer", "aws-xray-sdk"}
    shadowing = tmp_path / "shadowing.txt"
    shadowing.write_text("botocore==1.44.8 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(BundlingError, match="pins botocore"):
        dependencies_dir(shadowing)
    unhashed = tmp_path / "unhashed.txt"
    unhashed.write_text("pg8000==1.31.6\n")
    with pytest.raises(BundlingError, match="has no hashes"):
        dependencies_dir(unhashed)
