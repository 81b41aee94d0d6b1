"""Rotation-proof secrets and the secret on the command line.

A PostgreSQL that checks passwords (SCRAM) is started here; the reconciler's role reads its credentials from a
moto Secrets Manager secret. Between two invocations of a warm handler the password is rotated the way RDS does
it (ALTER ROLE, then the secret's new version) and the pooled connection is lost: the second invocation must
succeed by reading the secret again.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url

from annotation_reconciler import db, handlers
from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import make_engine
from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.local.postgres import LocalPostgres
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.service import runtime
from support.logs import handler_logs
from support.world import BUCKET, World, make_world, s3_notification, sqs_event

ROLE = "rotating_reconciler"
FIRST, SECOND = "first-Pa@ss/word:1", "second-Pa@ss/word:2"  # reserved characters: fine in a secret


@pytest.fixture(scope="module")
def password_server() -> Iterator[str]:
    with LocalPostgres(password="owner-pw") as server:
        yield server.url


@pytest.fixture
def rotation_world(password_server: str, s3: Any) -> Iterator[tuple[World, str]]:
    """A portal database on the password-checking server, the role with the grants (the owner migrated first),
    and the role's credentials in a Secrets Manager secret; yields the world (owner's engine) and the secret."""
    factory = DatabaseFactory(password_server, template="rotation_template")
    url = factory.fresh("rotation")
    owner = make_engine(url)
    world = make_world(owner, s3, url, PortalSpec(datasets=1, runs_per_dataset=2))
    with owner.begin() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {ROLE}"))
        conn.execute(text(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{FIRST}'"))  # utility statements bind nothing
        conn.exec_driver_sql(CliRunner().invoke(cli, ["grants", "--role", ROLE]).output)
    parsed = make_url(url)
    secret = {"username": ROLE, "password": FIRST, "host": parsed.host, "port": parsed.port, "dbname": "rotation"}
    arn = boto3.client("secretsmanager", region_name="us-west-2").create_secret(
        Name="portal-db-reconciler", SecretString=json.dumps(secret)
    )["ARN"]
    yield world, arn
    with owner.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {ROLE}"))
    owner.dispose()
    factory.drop("rotation")
    with make_engine(factory.url_for("postgres")).begin() as conn:
        conn.execute(text(f"DROP ROLE {ROLE}"))


def rotate(world: World, arn: str, password: str) -> None:
    """What RDS's rotation does: a new password on the server, then the secret's new version."""
    with world.engine.begin() as conn:
        conn.execute(text(f"ALTER ROLE {ROLE} PASSWORD '{password}'"))
    secrets = boto3.client("secretsmanager", region_name="us-west-2")
    current = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({**current, "password": password}))


def drop_role_connections(world: World) -> int:
    """The pool's connections end (a recycle, a failover): the next one authenticates again."""
    with world.engine.begin() as conn:
        return len(
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"), {"role": ROLE}
            ).all()
        )


@pytest.fixture
def warm_lambda(rotation_world: tuple[World, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The deployed configuration: the handlers' cached runtime, built from the environment on first use."""
    _world, arn = rotation_world
    for name, value in {
        "RECONCILER_DB_SECRET_ARN": arn,
        "RECONCILER_BUCKET": BUCKET,
        "RECONCILER_DRY_RUN": "false",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RECONCILER_DB_URL", raising=False)
    runtime.cached_runtime.cache_clear()
    db.cached_secret_engine.cache_clear()
    monkeypatch.setattr(handlers.common, "runtime_factory", runtime.cached_runtime)
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    logging.getLogger().addHandler(handler)
    logging.getLogger("annotation_reconciler").setLevel(logging.INFO)
    # during an invocation the package's loggers write through the handlers' JSON logger (logs.package_logs)
    with handler_logs(logs):
        yield logs
    logging.getLogger().removeHandler(handler)
    runtime.cached_runtime().engine.dispose()
    runtime.cached_runtime.cache_clear()
    db.cached_secret_engine.cache_clear()


def test_a_warm_handler_survives_a_password_rotation(
    rotation_world: tuple[World, str], warm_lambda: io.StringIO
) -> None:
    world, arn = rotation_world
    first, second = world.portal.metadata_keys[:2]
    world.delete(first, second)

    assert handlers.handle_events(sqs_event(s3_notification(BUCKET, first)), LocalContext()) == {
        "batchItemFailures": []
    }
    engine = runtime.cached_runtime().engine
    rotate(world, arn, SECOND)
    assert drop_role_connections(world) >= 1  # the pooled connection authenticated with the old password is gone

    assert handlers.handle_events(sqs_event(s3_notification(BUCKET, second)), LocalContext()) == {
        "batchItemFailures": []
    }
    assert runtime.cached_runtime().engine is engine  # the same warm container, the same engine
    assert world.ledger() == {world.ids[first]: "quarantined", world.ids[second]: "quarantined"}
    logged = warm_lambda.getvalue()
    assert "the database refused the secret's credentials: reading the secret again and retrying once" in logged
    assert FIRST not in logged and SECOND not in logged


def test_a_stale_secret_with_a_wrong_password_fails_clearly_after_one_retry(
    rotation_world: tuple[World, str], warm_lambda: io.StringIO
) -> None:
    """The server changed the password but the secret was never updated: one re-read, then a clear failure."""
    world, _arn = rotation_world
    key = world.portal.metadata_keys[0]
    world.delete(key)
    with world.engine.begin() as conn:
        conn.execute(text(f"ALTER ROLE {ROLE} PASSWORD 'nobody-knows-this'"))
    answer = handlers.handle_events(sqs_event(s3_notification(BUCKET, key)), LocalContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert world.ledger() == {}
    assert warm_lambda.getvalue().count("reading the secret again and retrying once") >= 1


def test_every_cli_command_takes_the_secret(rotation_world: tuple[World, str], monkeypatch: pytest.MonkeyPatch) -> None:
    world, arn = rotation_world
    monkeypatch.delenv("RECONCILER_DB_URL", raising=False)
    db.cached_secret_engine.cache_clear()
    outputs = []
    # migrate takes the secret too, and, connected as the reconciler's role, says that the owner migrates
    refused = CliRunner().invoke(cli, ["migrate", "--db-secret-arn", arn], env={"COLUMNS": "200"})
    assert refused.exit_code == 2 and "runs as the owner of the portal's tables" in refused.output, refused.output
    for args in (
        ["status", "--db-secret-arn", arn, "--output", "json"],
        ["scan", "--db-secret-arn", arn, "--bucket", BUCKET, "--dataset-id", "10001"],
        ["purge", "--db-secret-arn", arn, "--bucket", BUCKET],
        ["approve", "--db-secret-arn", arn, "--dataset-id", "10001"],
    ):
        result = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, (args, result.output)
        outputs.append(result.output)
    monkeypatch.setenv("RECONCILER_DB_SECRET_ARN", arn)  # or from the environment, as the Lambdas do
    status = CliRunner().invoke(cli, ["status", "--output", "json"])
    assert status.exit_code == 0 and json.loads(status.output)["by_status"] == {}, status.output
    rotate(world, arn, SECOND)
    assert CliRunner().invoke(cli, ["status"]).exit_code == 0  # a new process reads the new password
    assert FIRST not in "".join(outputs) + refused.output


def test_an_unreadable_secret_is_one_clear_line(aws: None) -> None:
    missing = "arn:aws:secretsmanager:us-west-2:123456789012:secret:absent-AbCdEf"
    result = CliRunner().invoke(cli, ["status", "--db-secret-arn", missing])
    assert result.exit_code == 2 and f"cannot read the database secret {missing}" in result.output, result.output
    not_json = boto3.client("secretsmanager", region_name="us-west-2").create_secret(
        Name="not-json", SecretString="postgres://u:p@h/d"
    )["ARN"]
    result = CliRunner().invoke(cli, ["status", "--db-secret-arn", not_json])
    assert result.exit_code == 2 and "is not JSON: store an RDS secret JSON" in result.output, result.output
    assert "u:p@h" not in result.output
