"""Security: secrets never logged, bound parameters only, and the documented least-privilege role suffices."""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from annotation_reconciler import handlers
from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import make_engine
from annotation_reconciler.events import ChangeKind, ObjectChange
from annotation_reconciler.ledger.repository import Scope
from annotation_reconciler.local.databases import DatabaseFactory, create_portal_schema
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.reconcile import Reconciler
from annotation_reconciler.runtime import build_runtime
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage
from support.world import BUCKET, World, make_world, s3_notification

PASSWORD = "hunter2-S3cr3t!"


def test_secrets_never_reach_the_logs(
    engine: Engine,
    s3: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=2))
    url = make_url(db_url)
    secrets = boto3.client("secretsmanager", region_name="us-west-2")
    good = secrets.create_secret(
        Name="portal-db",
        SecretString=json.dumps(
            {
                "username": url.username,
                "password": PASSWORD,
                "host": url.host,
                "port": url.port,
                "dbname": url.database,
            }
        ),
    )["ARN"]
    bad = secrets.create_secret(
        Name="portal-db-down",
        SecretString=json.dumps(
            {
                "username": "reconciler",
                "password": PASSWORD,
                "host": "127.0.0.1",
                "port": 1,
                "dbname": "portal",
            }
        ),
    )["ARN"]
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    runtime = build_runtime(
        {"RECONCILER_DB_SECRET_ARN": good, "RECONCILER_BUCKET": BUCKET, "RECONCILER_DRY_RUN": "false"}
    )
    monkeypatch.setattr(handlers, "runtime_factory", lambda: runtime)
    key = world.portal.metadata_keys[0]
    world.delete(key)
    handlers.handle_events(s3_notification(BUCKET, key), LocalContext())
    handlers.handle_schedule({"detail": {"action": "all"}}, LocalContext())
    runtime.engine.dispose()
    broken = build_runtime({"RECONCILER_DB_SECRET_ARN": bad, "RECONCILER_BUCKET": BUCKET})
    monkeypatch.setattr(handlers, "runtime_factory", lambda: broken)
    with pytest.raises(Exception) as info:
        handlers.handle_schedule({"detail": {"action": "purge"}}, LocalContext())
    logged = capsys.readouterr().out + capsys.readouterr().err + caplog.text + str(info.value) + repr(info.value)
    assert world.ledger() == {world.ids[key]: "quarantined"}  # the good runtime did its work
    assert "127.0.0.1" in logged or "connect" in logged.lower()
    assert PASSWORD not in logged and PASSWORD not in repr(broken.engine.url) and PASSWORD not in str(runtime.settings)
    assert PASSWORD not in json.dumps(
        Settings.from_env(
            {"RECONCILER_DB_URL": f"postgresql+pg8000://u:{PASSWORD}@h/d", "RECONCILER_BUCKET": BUCKET}
        ).redacted()
    )


def test_every_statement_binds_its_values(engine: Engine, s3: Any, db_url: str) -> None:
    """No stored path, key or run name is ever spliced into SQL text: values travel as parameters."""
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=2, odd_run_names=True))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt))
    reconciler = world.reconciler()
    keys = world.portal.metadata_keys[:3]
    world.delete(*keys)
    reconciler.apply_changes([ObjectChange(BUCKET, k, ChangeKind.REMOVED, "s3", world.clock(), None) for k in keys])
    reconciler.scan_shard(Scope(dataset_id=10001))
    world.clock.advance(hours=2)
    reconciler.purge()
    reconciler.approve(10001)
    assert len(statements) > 15
    for needle in ("ribosome", "TS 1+2", "s3://", BUCKET, "10001/", "metadata object removed"):
        assert not [s for s in statements if needle in s], needle


def test_the_documented_least_privilege_role_is_enough(db_factory: DatabaseFactory, s3: Any, worker_id: str) -> None:
    owner_url = db_factory.empty(f"grants_{worker_id}")
    owner = make_engine(owner_url)
    create_portal_schema(owner)
    grants = resources.files("annotation_reconciler.ledger").joinpath("grants.sql").read_text()
    role = f"reconciler_{worker_id}"
    with owner.begin() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'"))
        conn.exec_driver_sql(grants.replace("annotation_reconciler", role))
    from annotation_reconciler.local.synthetic import build_portal, write_bucket, write_rows

    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2))
    write_bucket(s3, portal, create=False)
    ids = write_rows(owner, portal)
    role_url = make_url(owner_url).set(username=role, password=PASSWORD).render_as_string(hide_password=False)
    migrate = CliRunner().invoke(cli, ["migrate", "--db-url", role_url])
    assert migrate.exit_code == 0, migrate.output
    assert "ask its owner to run: CREATE INDEX CONCURRENTLY" in migrate.output
    restricted = make_engine(role_url)
    settings = Settings(
        bucket=BUCKET,
        s3_prefix=f"s3://{BUCKET}/",
        db_url=role_url,
        dry_run=False,
        grace_period_hours=1,
        max_purge_fraction=1.0,
    )
    world = World(restricted, s3, portal, ids, __import__("support.world", fromlist=["Clock"]).Clock(), role_url)
    reconciler = Reconciler(restricted, S3Storage(s3, BUCKET), settings, clock=world.clock)
    key = portal.metadata_keys[0]
    world.delete(key)
    assert reconciler.apply_changes(
        [ObjectChange(BUCKET, key, ChangeKind.REMOVED, "s3", world.clock(), None)]
    ).quarantined
    assert reconciler.scan_shard(Scope(dataset_id=10001)).errors == []
    world.clock.advance(hours=2)
    assert reconciler.purge().purged == [ids[key]]
    with pytest.raises(Exception, match="permission denied"), restricted.begin() as conn:
        conn.execute(text("UPDATE annotation SET object_name = 'x'"))
    with pytest.raises(Exception, match="permission denied"), restricted.begin() as conn:
        conn.execute(text("INSERT INTO run (dataset_id, name, s3_prefix, https_prefix) VALUES (10001, 'r', 'p', 'h')"))
    restricted.dispose()
    with owner.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {role}"))
    owner.dispose()
    db_factory.drop(f"grants_{worker_id}")
    with make_engine(db_factory.url_for("postgres")).begin() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
