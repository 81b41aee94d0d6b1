"""``annotation-reconciler ingest`` against a real-HTTP moto server and a database the portal created."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text

from annotation_reconciler.cli.ingest import ingest
from annotation_reconciler.db import make_engine
from annotation_reconciler.ledger import migrate as ledger_migrate
from annotation_reconciler.local.databases import DatabaseFactory, create_portal_schema
from annotation_reconciler.local.synthetic import PortalSpec, SyntheticPortal, build_portal
from annotation_reconciler.local.synthetic_bucket import write_bucket
from annotation_reconciler.local.synthetic_rows import write_deposition, write_rows

BUCKET = "cryoet-data-portal-public"
SPEC = PortalSpec(datasets=1, runs_per_dataset=2, voxel_spacings_per_run=2, annotations_per_voxel_spacing=2)


pytestmark = pytest.mark.usefixtures("no_stray_endpoint")  # in-process moto: boto3's default endpoint


@pytest.fixture
def bucket(moto_endpoint: str) -> tuple[Any, SyntheticPortal]:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-west-2")
    portal = build_portal(SPEC)
    write_bucket(client, portal)
    return client, portal


@pytest.fixture
def portal_db(db_factory: DatabaseFactory, worker_id: str) -> Iterator[tuple[str, Engine]]:
    """A database as the portal leaves it: its tables, no reconciler ledger."""
    name = f"test_{worker_id}_portal_only"
    url = db_factory.empty(name)
    engine = make_engine(url)
    create_portal_schema(engine)
    yield url, engine
    engine.dispose()
    db_factory.drop(name)


def invoke(endpoint: str, db_url: str, *args: str, **extra_env: str) -> Result:
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "RECONCILER_DB_URL": db_url,
        "COLUMNS": "200",
        "RECONCILER_MAX_PURGE_FRACTION": "0.5",
        "RECONCILER_IMPORTER_CLEANUP": None,
        **extra_env,
    }
    return CliRunner().invoke(ingest, ["--bucket", BUCKET, "--dataset-id", "10001", *args], env=env)


def table_row(output: str, table: str) -> list[int]:
    """The numbers of the summary's line for ``table`` (piped output: one line per table, never a drawn table)."""
    for line in output.splitlines():
        if line.startswith(f"  {table}: "):
            return [int(n) for n in re.findall(r" (\d+)(?:,|$)", line)]
    raise AssertionError(f"no row for {table} in:\n{output}")


def annotation_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM annotation")).scalar_one())


def test_ingest_on_a_portal_database_after_migrate(
    portal_db: tuple[str, Engine], bucket: tuple[Any, SyntheticPortal], moto_endpoint: str
) -> None:
    url, engine = portal_db
    refused = invoke(moto_endpoint, url)
    assert refused.exit_code == 2 and "annotation-reconciler migrate" in refused.output
    assert annotation_count(engine) == 0

    ledger_migrate.upgrade(engine)
    no_deposition = invoke(moto_endpoint, url)
    assert no_deposition.exit_code == 1 and annotation_count(engine) == 0
    assert "deposition 301 is not in the database: import the deposition first" in no_deposition.output

    write_deposition(engine, SPEC)  # what the portal's deposition import does first
    done = invoke(moto_endpoint, url)

    _, portal = bucket
    assert done.exit_code == 0, done.output
    assert table_row(done.output, "annotation") == [len(portal.annotations), 0, 0]
    assert table_row(done.output, "tomogram_voxel_spacing") == [
        SPEC.runs_per_dataset * SPEC.voxel_spacings_per_run,
        0,
        0,
    ]
    assert annotation_count(engine) == len(portal.annotations)


def test_dry_run_reports_and_writes_nothing_then_ingest_removes(
    engine: Engine, db_url: str, bucket: tuple[Any, SyntheticPortal], moto_endpoint: str
) -> None:
    client, portal = bucket
    ids = write_rows(engine, portal)
    gone = portal.annotations[0]
    client.delete_object(Bucket=BUCKET, Key=gone.metadata_key)
    before = annotation_count(engine)

    dry = invoke(moto_endpoint, db_url, "--dry-run", "--run-name", gone.run_name)
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and f"would remove stale annotations [{ids[gone.metadata_key]}]" in dry.output
    assert table_row(dry.output, "annotation")[2] == 1
    assert annotation_count(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM annotation_reconciler.annotation_quarantine")).scalar_one() == 0

    real = invoke(moto_endpoint, db_url, "--run-name", gone.run_name)
    assert real.exit_code == 0, real.output
    assert f"removed stale annotations [{ids[gone.metadata_key]}]" in real.output
    assert annotation_count(engine) == before - 1


@pytest.mark.parametrize("switch", [("--no-cleanup",), ("RECONCILER_IMPORTER_CLEANUP", "false")])
def test_the_cleanup_can_be_switched_off(
    engine: Engine, db_url: str, bucket: tuple[Any, SyntheticPortal], moto_endpoint: str, switch: tuple[str, ...]
) -> None:
    client, portal = bucket
    ids = write_rows(engine, portal)
    gone = portal.annotations[0]
    client.delete_object(Bucket=BUCKET, Key=gone.metadata_key)
    if len(switch) == 1:
        done = invoke(moto_endpoint, db_url, "--run-name", gone.run_name, switch[0])
    else:
        done = invoke(moto_endpoint, db_url, "--run-name", gone.run_name, **{switch[0]: switch[1]})
    assert done.exit_code == 0, done.output
    assert "sibling cleanup not run (switched off)" in done.output
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM annotation WHERE id = :id"), {"id": ids[gone.metadata_key]}
            ).scalar_one()
            == 1
        )
        assert conn.execute(text("SELECT count(*) FROM annotation_reconciler.annotation_quarantine")).scalar_one() == 0


def test_a_typo_in_the_cleanup_switch_is_refused(db_url: str, moto_endpoint: str) -> None:
    done = invoke(moto_endpoint, db_url, RECONCILER_IMPORTER_CLEANUP="flase")
    assert done.exit_code == 2 and "RECONCILER_IMPORTER_CLEANUP='flase' is not a boolean" in done.output


def test_unreadable_metadata_exits_1_and_removes_nothing(
    engine: Engine, db_url: str, bucket: tuple[Any, SyntheticPortal], moto_endpoint: str
) -> None:
    client, portal = bucket
    write_rows(engine, portal)
    client.delete_object(Bucket=BUCKET, Key=portal.annotations[0].metadata_key)  # stale ...
    client.put_object(Bucket=BUCKET, Key=portal.annotations[1].metadata_key, Body=b"{not json")  # ... but unprovable
    before = annotation_count(engine)

    result = invoke(moto_endpoint, db_url)

    assert result.exit_code == 1
    assert "cleanup skipped for " + portal.annotations[0].voxel_spacing_prefix in result.output
    assert "ParseJSON" in result.output and portal.annotations[1].metadata_key in result.output
    assert annotation_count(engine) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bucket", "s3://not-a-bucket"], "not an S3 bucket name"),
        (["--s3-prefix", "s3://another-bucket/"], "names bucket"),
        (["--https-prefix", "files.example.org"], "not a URL"),
    ],
)
def test_bad_usage_exits_2(db_url: str, moto_endpoint: str, args: list[str], message: str) -> None:
    result = invoke(moto_endpoint, db_url, *args)
    assert result.exit_code == 2 and message in result.output


def test_missing_database_exits_2() -> None:
    result = CliRunner().invoke(ingest, ["--bucket", BUCKET, "--dataset-id", "1"], env={"RECONCILER_DB_URL": ""})
    assert result.exit_code == 2 and "RECONCILER_DB_URL" in result.output
