"""The spec's two example invocations, run as subprocesses against the moto server and the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
from sqlalchemy import Engine, text

from annotation_reconciler.local.synthetic import PortalSpec, build_portal
from annotation_reconciler.local.synthetic_bucket import write_bucket
from annotation_reconciler.local.synthetic_rows import write_rows
from support.world import BUCKET

SCRIPT = Path(sys.executable).with_name("cleanup-stale-annotations")


def run(command: list[str], endpoint: str, db_url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "RECONCILER_DB_URL": db_url}
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_spec_invocations_dry_run_then_delete(moto_endpoint: str, db_url: str, engine: Engine) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-2")
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, annotations_per_voxel_spacing=4))
    write_bucket(s3, portal)
    ids = write_rows(engine, portal)
    gone = [a.metadata_key for a in portal.annotations if a.run_name == "TS_001"][:2]
    for key in gone:
        s3.delete_object(Bucket=BUCKET, Key=key)
    with engine.connect() as conn:
        run_id = conn.execute(text("SELECT id FROM run WHERE name = 'TS_001'")).scalar_one()
        before = set(conn.execute(text("SELECT id FROM annotation")).scalars())
    args = ["--run-id", str(run_id), "--s3-bucket", BUCKET, "--s3-prefix", f"s3://{BUCKET}/"]

    dry = run(
        [sys.executable, "-m", "annotation_reconciler.cli.cleanup_stale_annotations", *args], moto_endpoint, db_url
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"Found 2 stale annotations:\n  Run ID {run_id}: 2 annotations\n")
    for key in gone:
        assert f"    - Annotation ID {ids[key]}: s3://{BUCKET}/{key}\n" in dry.stdout
    assert "Dry run mode: No deletions performed.\nRun with --no-dry-run to perform deletions." in dry.stdout

    real = run([str(SCRIPT), *args, "--no-dry-run"], moto_endpoint, db_url, stdin="y\n")
    assert real.returncode == 0, real.stderr
    assert "back up the database" in real.stderr and "Delete 2 stale annotations" in real.stderr
    for key in gone:
        assert f"deleted annotation {ids[key]} (run {run_id})" in real.stderr  # every deletion is logged
    with engine.connect() as conn:
        after = set(conn.execute(text("SELECT id FROM annotation")).scalars())
    assert after == before - {ids[k] for k in gone}
