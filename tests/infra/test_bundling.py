"""The Lambda asset is bundled locally (no Docker) and holds everything the handlers import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3


def test_bundled_asset_imports_the_handlers(tmp_path: Path, synth_context: dict[str, object]) -> None:
    from infra.app import build_app

    context = {k: v for k, v in synth_context.items() if k != "aws:cdk:bundling-stacks"}
    build_app(context, outdir=str(tmp_path), nag=False).synth()
    manifest = json.loads((tmp_path / "AnnotationReconciler.assets.json").read_text())
    assets = {f["source"]["path"] for f in manifest["files"].values() if f["source"].get("packaging") == "zip"}
    assert len(assets) == 1, assets  # the three functions share one asset
    asset = tmp_path / assets.pop()
    for package in ("sqlalchemy", "pg8000", "aws_lambda_powertools", "aws_xray_sdk", "annotation_reconciler"):
        assert (asset / package).is_dir(), package
    assert not (asset / "annotation_reconciler" / "local").exists()  # test-only code stays out
    # What the Lambda python runtime itself provides (boto3 and its pure-Python dependencies), nothing more
    provided = tmp_path / "lambda-runtime"
    provided.mkdir()
    for name in ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py"):
        source = Path(boto3.__file__).parent.parent / name
        (provided / name).symlink_to(source)
    python = shutil.which("python3.12") or sys.executable  # the Lambda runtime's version when present
    probe = (
        "import annotation_reconciler.handlers as h, sqlalchemy, pg8000; "
        "print(h.handle_events.__name__, h.handle_schedule.__name__, h.handle_work.__name__)"
    )
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{asset}:{provided}",
        "PYTHONNOUSERSITE": "1",
        "AWS_DEFAULT_REGION": "us-west-2",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYENV_VERSION": "3.12.1",
    }
    done = subprocess.run(
        [python, "-S", "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["handle_events", "handle_schedule", "handle_work"]


def test_cdk_cli_synthesizes_offline(tmp_path: Path) -> None:
    """`make synth` with the pinned npm CLI; every proxy points at a closed port, so any network call would fail."""
    root = Path(__file__).resolve().parents[2]
    install = subprocess.run(["make", "-s", ".cdk-cli/node_modules/.bin/cdk"], cwd=root, capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    args = f"-o {tmp_path}"
    done = subprocess.run(
        ["make", "-s", "synth", f"CDK_ARGS={args}"], cwd=root, capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    template = json.loads((tmp_path / "AnnotationReconciler.template.json").read_text())
    handlers = sorted(
        r["Properties"]["Handler"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    )
    assert handlers == [f"annotation_reconciler.handlers.handle_{n}" for n in ("events", "schedule", "work")]
