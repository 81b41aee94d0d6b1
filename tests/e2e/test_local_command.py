"""``annotation-reconciler local``: the local runtime on a moto server and the test database, as an operator runs it."""

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

COMMAND = Path(sys.executable).with_name("annotation-reconciler")


def test_local_runtime_quarantines_then_purges_a_deleted_annotation(
    moto_endpoint: str, db_url: str, engine: Engine
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-2")
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, annotations_per_voxel_spacing=6))
    write_bucket(s3, portal)
    ids = write_rows(engine, portal)
    key = portal.metadata_keys[0]
    args = ["local", "--db-url", db_url, "--endpoint-url", moto_endpoint, "--bucket", BUCKET, "--no-dry-run"]
    args += ["--grace-period-hours", "0.0005", "--purge-every", "1", "--duration", "12"]
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-west-2", "POWERTOOLS_METRICS_DISABLED": "true"}
    env.pop("AWS_ENDPOINT_URL", None)
    with subprocess.Popen(
        [str(COMMAND), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"listening to s3://{BUCKET} events"), first + (
            proc.stderr.read() if proc.stderr else ""
        )
        s3.delete_object(Bucket=BUCKET, Key=key)  # S3 -> the local queue -> handle_events
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    received = [line for line in out.splitlines() if line.startswith("events: ")]
    assert received and all(" 0 failed" in line for line in received)  # the deletion (and moto's s3:TestEvent)
    # 1 of 12 annotations stays under the mass-deletion guard (10%); the grace period (1.8 s) passes in the run
    assert "'deleted': 1" in out
    with engine.connect() as conn:
        left = set(conn.execute(text("SELECT id FROM annotation")).scalars())
        ledger = conn.execute(
            text("SELECT annotation_id, status, source FROM annotation_reconciler.annotation_quarantine")
        ).all()
    assert ids[key] not in left and len(left) == len(ids) - 1
    assert [tuple(r) for r in ledger] == [(ids[key], "purged", "event")]
