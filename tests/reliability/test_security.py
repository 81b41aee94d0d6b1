"""Security: secrets never logged, bound parameters only (checked at run time and in the source), and the
documented least-privilege database role is enough, is exactly what it says, and fails safe.

The IAM side (each function's statements, no S3 write or delete) is tests/infra/test_stack.py::
test_each_function_holds_exactly_the_statements_of_the_table.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

import annotation_reconciler
from annotation_reconciler import handlers
from annotation_reconciler.cli.main import cli
from annotation_reconciler.db_import import ingest
from annotation_reconciler.ledger import AUDIT_SCHEMA, LEDGER_SCHEMA
from annotation_reconciler.local import synthetic
from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.local.synthetic import PortalSpec, build_portal
from annotation_reconciler.local.synthetic_rows import write_rows
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.service.runtime import Runtime, build_runtime
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage
from support.faults import INJECTED
from support.logs import handler_logs
from support.rds import ORDERS, RdsPortal
from support.seed import seed_bucket
from support.world import (
    BUCKET,
    Clock,
    World,
    make_world,
    removed,
    s3_notification,
    sqs_event,
    table_counts,
    use_runtime,
)

PASSWORD = "hunter2-S3cr3t!"
PACKAGE = Path(annotation_reconciler.__file__).parent
#: Run names an attacker who can write keys could choose: quotes, a statement terminator, a comment.
HOSTILE_RUN_NAMES = ("TS_o'brien", "x'); DELETE FROM annotation; --", "TS 1+2 é", "TS_ü+plus")


# --- secrets ---------------------------------------------------------------------------------


def queued_runtime(**database: str) -> Runtime:
    """The handlers' runtime as deployed (a work queue for the reconciliation's shards), deleting for real."""
    work = boto3.client("sqs", region_name="us-west-2").create_queue(QueueName="work")["QueueUrl"]
    env = {"RECONCILER_BUCKET": BUCKET, "RECONCILER_DRY_RUN": "false", "RECONCILER_WORK_QUEUE_URL": work}
    return build_runtime({**env, **database})


@pytest.fixture
def lambda_logs() -> Iterator[io.StringIO]:
    """What the handlers' structured logger writes (to CloudWatch, in Lambda): every line, every extra field."""
    with handler_logs() as buffer:
        yield buffer


@pytest.fixture
def world_spec() -> PortalSpec:
    """The portal of the log tests' ``world``: one dataset of two runs."""
    return PortalSpec(datasets=1, runs_per_dataset=2)


def test_secrets_never_reach_the_logs(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    lambda_logs: io.StringIO,
) -> None:
    """The Secrets Manager path: the password is read at run time and appears in no log line or error."""
    url = make_url(world.db_url)
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
    runtime = queued_runtime(RECONCILER_DB_SECRET_ARN=good)
    use_runtime(monkeypatch, runtime)
    key = world.portal.metadata_keys[0]
    world.delete(key)
    handlers.handle_events(s3_notification(BUCKET, key), LocalContext())
    handlers.handle_schedule({"detail": {"action": "all"}}, LocalContext())
    runtime.engine.dispose()
    broken = build_runtime({"RECONCILER_DB_SECRET_ARN": bad, "RECONCILER_BUCKET": BUCKET})
    use_runtime(monkeypatch, broken)
    with pytest.raises(Exception) as info:
        handlers.handle_schedule({"detail": {"action": "purge"}}, LocalContext())
    captured = capsys.readouterr()
    logged = lambda_logs.getvalue() + captured.out + captured.err + caplog.text + str(info.value) + repr(info.value)
    assert world.ledger() == {world.ids[key]: "quarantined"}  # the good runtime did its work
    assert '"message":"events applied"' in logged and "DEBUG    botocore" in logged  # what was captured
    assert "127.0.0.1" in logged or "connect" in logged.lower()
    assert PASSWORD not in logged and PASSWORD not in repr(broken.engine.url) and PASSWORD not in str(runtime.settings)
    assert PASSWORD not in json.dumps(
        Settings.from_env(
            {"RECONCILER_DB_URL": f"postgresql+pg8000://u:{PASSWORD}@h/d", "RECONCILER_BUCKET": BUCKET}
        ).redacted()
    )


def test_a_password_in_the_database_url_stays_out_of_logs_and_output(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    lambda_logs: io.StringIO,
) -> None:
    """The RECONCILER_DB_URL path, through the three handlers (their errors included) and the operator CLI."""
    with_password = make_url(world.db_url).set(password=PASSWORD).render_as_string(hide_password=False)
    unreachable = make_url(with_password).set(port=1).render_as_string(hide_password=False)
    caplog.set_level(logging.DEBUG)
    runtime = queued_runtime(RECONCILER_DB_URL=with_password)
    use_runtime(monkeypatch, runtime)
    key = world.portal.metadata_keys[0]
    world.delete(key)
    handlers.handle_events(sqs_event(s3_notification(BUCKET, key), '{"truncated'), LocalContext())
    handlers.handle_schedule({"action": "all"}, LocalContext())
    handlers.handle_work(sqs_event({"type": "scan_shard", "dataset_id": "not a number"}), LocalContext())
    runtime.engine.dispose()
    down = build_runtime({"RECONCILER_DB_URL": unreachable, "RECONCILER_BUCKET": BUCKET})
    use_runtime(monkeypatch, down)
    assert handlers.handle_events(sqs_event(s3_notification(BUCKET, key)), LocalContext()) == {
        "batchItemFailures": [{"itemIdentifier": "m-0"}]
    }
    outputs = []
    for args in (
        ["status", "--db-url", with_password],
        ["scan", "--db-url", with_password, "--bucket", BUCKET, "--dataset-id", "10001"],
        ["purge", "--db-url", with_password, "--bucket", BUCKET],
        ["approve", "--db-url", with_password, "--dataset-id", "10001"],
        ["status", "--db-url", unreachable],
        ["migrate", "--db-url", unreachable],
    ):
        result = CliRunner().invoke(cli, args)
        outputs.append(result.output + repr(result.exception))
    assert "cannot connect to the database" in outputs[-1]
    captured = capsys.readouterr()
    logged = lambda_logs.getvalue() + captured.out + captured.err + caplog.text + "".join(outputs)
    assert world.ledger() == {world.ids[key]: "quarantined"}
    assert '"message":"rejected a message"' in logged and '"message":"shard failed"' in logged  # errors logged
    assert "Traceback" in logged and "DEBUG    botocore" in logged
    assert PASSWORD not in logged
    down.engine.dispose()


# --- bound parameters -----------------------------------------------------------------------------


@pytest.fixture
def statements() -> Iterator[list[tuple[str, Any]]]:
    """Every statement any engine sends (the CLI's own engines included), with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def source_text() -> str:
    return "\n".join(p.read_text() for p in sorted(PACKAGE.rglob("*.py")))


def test_every_statement_binds_its_values(
    engine: Engine, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, statements: list[tuple[str, Any]]
) -> None:
    """Keys, paths and run names built to break spliced SQL travel through every operation (events, data-file
    events, scan, purge, approve, release, the importer, the status CLI) as parameters, never as SQL text."""
    monkeypatch.setattr(synthetic, "ODD_RUN_NAMES", HOSTILE_RUN_NAMES)
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=4, odd_run_names=True))
    statements.clear()  # what the test's own set-up sent
    hostile = [a for a in world.portal.annotations if "'" in a.run_name]
    victim, spared, stale = hostile[0], hostile[1], hostile[-1]
    reconciler = world.reconciler()
    world.delete(victim.metadata_key, victim.files[0].key, stale.metadata_key)
    reconciler.apply_changes(removed(victim.metadata_key, victim.files[0].key, at=world.clock()))
    assert world.ids[stale.metadata_key] in reconciler.scan_shard(Scope(dataset_id=10001)).quarantined
    assert reconciler.release(world.ids[stale.metadata_key])
    assert reconciler.clear_release(world.ids[stale.metadata_key]) == 1  # else the importer keeps it (issue 16)
    world.clock.advance(hours=2)
    reconciler.approve(10001)
    purged = reconciler.purge().deleted
    imported = ingest(world.engine, S3Storage(s3, BUCKET), BucketLayout(BUCKET), 10001, stale.run_name)
    status = CliRunner().invoke(cli, ["status", "--db-url", db_url, "--output", "json"])
    assert status.exit_code == 0, status.output
    # it all worked: the hostile names were data, nothing more
    assert world.ids[victim.metadata_key] in purged and imported.ok
    assert imported.deleted == [world.ids[stale.metadata_key]]
    remaining = world.annotation_ids()
    assert world.ids[spared.metadata_key] in remaining and len(remaining) == len(world.ids) - 2
    assert len(statements) > 40
    values = [victim.run_name, stale.run_name, victim.metadata_key, victim.files[0].key, "ribosome", BUCKET, "s3://"]
    values += ["10001/", "metadata object removed", "not found in S3"]
    for needle in values:
        assert not [s for s, _ in statements if needle in s], f"{needle!r} was spliced into SQL text"
    bound = json.dumps([p for _, p in statements], default=str)
    assert json.dumps(victim.metadata_key)[1:-1] in bound and json.dumps(stale.run_name)[1:-1] in bound
    # a value spliced as a literal would show up as a quoted string no one wrote in the package
    source = source_text()
    literals = {lit for s, _ in statements for lit in re.findall(r"'((?:[^']|'')*)'", s)}
    assert literals and not [lit for lit in literals if f"'{lit}'" not in source], literals


#: Every place the package formats SQL text from an expression, with what the expression is. Any new one must
#: be added here after checking that it cannot carry a value (only identifiers and fixed SQL fragments may).
SQL_FORMATTING = {
    ("portal/annotation_rows.py", "_REF_COLUMNS"): "a module constant: a fixed column list",
    ("ledger/migrations/versions/0002_annotation_metadata_path_index.py", "INDEX"): "a module constant: index name",
    ("local/demo_story.py", "t"): "a table name from a fixed tuple (the demo's row counts)",
    ("local/synthetic_rows.py", "table"): "a table name from the synthetic portal's fixed list",
    ("local/synthetic_rows.py", "cols"): "the fixed column names of the synthetic portal's COPY",
    ("local/databases.py", "name"): "the name of a throwaway test database the local factory creates",
    ("local/databases.py", "suffix"): "the factory's TEMPLATE clause, naming its own template database",
    ("ledger/migrations/env.py", "schema"): "a schema name of the constant tuple SCHEMAS (ledger/__init__.py)",
    (
        "ledger/migrations/env.py",
        "old",
    ): "the version table's old place, quoted from the constants LEDGER_SCHEMA and VERSION_TABLE",
    (
        "ledger/migrations/env.py",
        "new",
    ): "the version table's new place, quoted from the constants AUDIT_SCHEMA and VERSION_TABLE",
    ("ledger/grants.py", "ledger"): "the working ledger schema's name (LEDGER_SCHEMA)",
    ("ledger/grants.py", "audit"): "the audit schema's name (AUDIT_SCHEMA)",
    ("ledger/grants.py", "role"): "a role name that check_role allowed: [a-z_][a-z0-9_$]*, nothing else",
    ("ledger/grants.py", "events"): "a role name that check_role allowed: [a-z_][a-z0-9_$]*, nothing else",
    ("ledger/grants.py", "reads"): "the fixed tuple READ_TABLES, joined",
    ("ledger/migrations/versions/0004_operator_decisions_and_restore.py", "LEDGER_SCHEMA"): "the ledger schema's name",
    ("portal/restoring.py", "table"): "a table name from the fixed tuple TABLES",
    ("ledger/event_order.py", "_CHANGES"): "a module constant: the unnest of the bound id, time and sequencer arrays",
    ("ledger/event_order.py", "_C_IS_NEWER"): "a module constant: the stamp comparison of two rows",
    ("portal/restoring.py", "seq"): "the sequence pg_get_serial_sequence names for a table of TABLES (quoted)",
    ("ledger/quarantines.py", "OPEN_STATUS_LIST"): "OPEN_STATUSES as an SQL list (ledger/models.py)",
    ("ledger/exemptions.py", "OPEN_STATUS_LIST"): "OPEN_STATUSES as an SQL list (ledger/models.py)",
    ("ledger/event_order.py", "OPEN_STATUS_LIST"): "OPEN_STATUSES as an SQL list (ledger/models.py)",
    ("portal/deletion.py", "OPEN_STATUS_LIST"): "OPEN_STATUSES as an SQL list (ledger/models.py)",
    ("ledger/missing_files.py", "_INSERT"): "a module constant: the INSERT head of a missing-file report",
    ("ledger/missing_files.py", "_MERGE"): "a module constant: the ON CONFLICT of a missing-file report",
    # the events path's one write statement: each CTE a literal module constant of a ledger module
    ("ledger/event_batch.py", "quarantines.QUARANTINE_SQL"): "a module constant of ledger/quarantines.py",
    ("ledger/event_batch.py", "event_order.RELEASE_OLDER_SQL"): "a module constant of ledger/event_order.py",
    ("ledger/event_batch.py", "event_order.LAPSE_SQL"): "a module constant of ledger/event_order.py",
    ("ledger/event_batch.py", "event_order.STAMP_SQL"): "a module constant of ledger/event_order.py",
    ("ledger/event_batch.py", "resurrections.RECORD_SQL"): "a module constant of ledger/resurrections.py",
    ("ledger/event_batch.py", "missing_files.RECORD_BY_PATHS_SQL"): "a module constant of ledger/missing_files.py",
    ("ledger/event_batch.py", "missing_files.RESOLVE_SQL"): "a module constant of ledger/missing_files.py",
}
_SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|COPY|TRUNCATE|GRANT)\b")


def formatted_sql(tree: ast.AST) -> Iterator[str]:
    """The expressions formatted into SQL-looking strings: f-strings, ``%`` and ``.format``, ``+``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            fixed = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if _SQL_WORDS.search(fixed):
                yield from (ast.unparse(v.value) for v in node.values if isinstance(v, ast.FormattedValue))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if isinstance(side, ast.Constant) and isinstance(side.value, str) and _SQL_WORDS.search(side.value):
                    yield ast.unparse(other)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)
            and _SQL_WORDS.search(node.func.value.value)
        ):
            yield from (ast.unparse(a) for a in [*node.args, *(k.value for k in node.keywords)])


def test_no_sql_text_is_formatted_from_values() -> None:
    """Static: the package builds SQL text from expressions only where SQL_FORMATTING says, and each of those
    is a constant or an identifier from a fixed list."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for expression in formatted_sql(ast.parse(path.read_text())):
            found.add((path.relative_to(PACKAGE).as_posix(), expression))
    assert found == set(SQL_FORMATTING), f"new: {found - set(SQL_FORMATTING)}, gone: {set(SQL_FORMATTING) - found}"
    constants = {
        (path, name)
        for path, name in SQL_FORMATTING
        if name.isupper() or name.lstrip("_").isupper()  # module constants: check they are literal strings
    }
    for path, name in constants:
        module = ast.parse((PACKAGE / path).read_text())
        ledger = ast.parse((PACKAGE / "ledger" / "__init__.py").read_text())  # LEDGER_SCHEMA is set there
        models = ast.parse((PACKAGE / "ledger" / "models.py").read_text())  # and OPEN_STATUS_LIST here
        assigned = [
            n.value
            for n in [*module.body, *ledger.body, *models.body]
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)
        ]
        assert assigned and all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in assigned), name
    for _path, name in SQL_FORMATTING:  # module.CONSTANT of another ledger module: assigned there, once
        module_name, _, constant = name.partition(".")
        if constant and constant.lstrip("_").isupper():
            other = ast.parse((PACKAGE / "ledger" / f"{module_name}.py").read_text())
            assigned = [
                n.value
                for n in other.body
                if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == constant for t in n.targets)
            ]
            assert len(assigned) == 1 and isinstance(assigned[0], ast.Constant | ast.JoinedStr), name


# --- the least-privilege database role ------------------------------------------------------------

RECONCILER_TABLES = {
    "annotation_quarantine",
    "blind_prefix",
    "missing_annotation_file",
    "annotation_resurrection",
    "untracked_metadata",
}
AUDIT_TABLES = {"deleted_annotation", "annotation_reconciler_alembic_version"}


@pytest.fixture(params=ORDERS)
def least_privilege(
    request: pytest.FixtureRequest, db_factory: DatabaseFactory, s3: Any, worker_id: str
) -> Iterator[tuple[World, str, Engine]]:
    """A portal database as RDS holds it (its owner a login role with CREATEROLE, not a superuser), a login role
    holding exactly the rights `annotation-reconciler grants` prints, applied by the owner with psql, and the
    owner's `annotation-reconciler migrate`, in both orders. Yields a world on the role's engine, the role's name
    and the owner's engine."""
    rds = RdsPortal(db_factory, worker_id.replace("-", "_"))
    rds.create()
    try:
        rds.set_up(request.param)
        portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=3))
        seed_bucket(s3, portal)
        owner = rds.engine(rds.owner)
        ids = write_rows(owner, portal)
        restricted = rds.engine(rds.role)
        yield World(restricted, s3, portal, ids, Clock(), rds.url(rds.role)), rds.role, owner
    finally:
        rds.drop()


def role_reconciler(world: World) -> Reconciler:
    settings = Settings(
        bucket=BUCKET,
        s3_prefix=f"s3://{BUCKET}/",
        db_url=world.db_url,
        dry_run=False,
        grace_period_hours=1,
        max_purge_fraction=0.5,
    )
    return Reconciler(Context(world.engine, S3Storage(world.s3, BUCKET), settings, clock=world.clock))


def test_the_documented_least_privilege_role_is_enough(least_privilege: tuple[World, str, Engine]) -> None:
    world, role, owner = least_privilege
    with owner.connect() as conn:
        granted = set(
            conn.execute(
                text(
                    "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee = :role AND table_schema = 'public'"
                ),
                {"role": role},
            ).all()
        )
        tables = {
            (r.schemaname, r.tablename): r.tableowner
            for r in conn.execute(text("SELECT schemaname, tablename, tableowner FROM pg_tables"))
            if r.schemaname in ("public", LEDGER_SCHEMA, AUDIT_SCHEMA)
        }
        on_public = conn.execute(
            text(
                "SELECT has_schema_privilege(:role, 'public', 'CREATE'), has_schema_privilege(:role, 'public', 'USAGE')"
            ),
            {"role": role},
        ).one()
    reads = {"run"}  # a run's dataset; nothing else of the portal is read
    annotation_tables = {
        "annotation",
        "annotation_shape",
        "annotation_file",
        "annotation_author",
        "annotation_method_link",
    }
    expected = {(t, "SELECT") for t in reads | annotation_tables}
    assert granted == expected  # on the portal's tables: SELECT only (it deletes through the audited function)
    assert tuple(on_public) == (False, True)  # it may use public, never create in it
    ledger = {table for schema, table in tables if schema == LEDGER_SCHEMA}
    assert ledger == RECONCILER_TABLES and not RECONCILER_TABLES & {t for s, t in tables if s == "public"}
    assert {table for schema, table in tables if schema == AUDIT_SCHEMA} == AUDIT_TABLES
    assert all(owner_name != role for owner_name in tables.values())  # the role owns nothing

    reconciler = role_reconciler(world)
    metadata, data_file = world.portal.metadata_keys[0], world.portal.annotations[1].files[0].key
    world.delete(metadata, data_file)
    changes = removed(metadata, data_file, at=world.clock())
    result = reconciler.apply_changes(changes)
    assert result.quarantined == [world.ids[metadata]] and result.missing_files == 1
    assert reconciler.scan_shard(Scope(dataset_id=10001)).errors == []
    world.delete(*[k for k in world.portal.all_keys() if k.startswith("10001/")])  # the whole dataset: held
    held = reconciler.scan_shard(Scope(dataset_id=10001)).held
    assert held == sorted(i for k, i in world.ids.items() if k != metadata)  # the quarantined one stays so
    assert reconciler.approve(10001) == len(held) and reconciler.release(world.ids[world.portal.metadata_keys[5]])
    world.clock.advance(hours=2)
    purged = sorted(i for k, i in world.ids.items() if k not in (metadata, world.portal.metadata_keys[5]))
    assert sorted(reconciler.purge().deleted) == purged  # the unapproved one is held by the guard (all would go)
    status = CliRunner().invoke(cli, ["status", "--db-url", world.db_url, "--output", "json"])
    assert status.exit_code == 0 and json.loads(status.output)["by_status"]["purged"] == len(purged), status.output

    denied = [
        "UPDATE annotation SET object_name = 'x'",
        "INSERT INTO annotation (run_id, s3_metadata_path, https_metadata_path, annotation_method, method_type,"
        " annotation_ingest_id, object_id, object_name, deposition_date, release_date, last_modified_date)"
        " SELECT run_id, s3_metadata_path, https_metadata_path, annotation_method, method_type, annotation_ingest_id,"
        " object_id, object_name, deposition_date, release_date, last_modified_date FROM annotation LIMIT 1",
        "UPDATE run SET name = 'x'",
        "INSERT INTO deposition (title, description, deposition_date, release_date, last_modified_date)"
        " VALUES ('t', 'd', now(), now(), now())",
        # CVE-2018-1058: a function in public that the owner's `upper(title)` would resolve to, and a table there
        "CREATE FUNCTION public.upper(character varying) RETURNS text LANGUAGE sql AS 'SELECT $1::text'",
        "CREATE TABLE public.planted (id integer)",
        "CREATE VIEW public.planted AS SELECT 1 AS one",
        "INSERT INTO run (dataset_id, name, s3_prefix, https_prefix) VALUES (10001, 'r', 'p', 'h')",
        "INSERT INTO annotation_author (annotation_id, name) VALUES (1, 'x')",
        "DELETE FROM run",
        "DELETE FROM dataset",
        "DELETE FROM annotation_method_link",  # deleting goes through the function that writes the audit
        "DELETE FROM annotation",
        "UPDATE annotation_reconciler_audit.deleted_annotation SET reason = 'x'",
        "TRUNCATE annotation_reconciler.annotation_quarantine",
        "CREATE TABLE annotation_reconciler.planted (id integer)",
        "SELECT id FROM dataset",
        "SELECT id FROM tomogram_voxel_spacing",
        "TRUNCATE annotation_author",
        "DROP TABLE annotation_method_link",
        "ALTER TABLE annotation ADD COLUMN x integer",
        "SELECT * FROM alembic_version",  # the portal's own migrations: never read, never written
    ]
    for statement in denied:
        with pytest.raises(Exception, match=r"permission denied|must be (the )?owner"), world.engine.begin() as conn:
            conn.execute(text(statement))


def test_the_role_runs_the_three_handlers_and_the_cli(
    least_privilege: tuple[World, str, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the role: the events, schedule (purge and the shard fan-out) and work handlers, then `scan` and
    `purge` from the command line."""
    world, _role, _owner = least_privilege
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    sqs = boto3.client("sqs", region_name="us-west-2")
    work = sqs.create_queue(QueueName="role-work")["QueueUrl"]
    runtime = world.runtime(monkeypatch, RECONCILER_WORK_QUEUE_URL=work)
    (by_event, by_scan), by_cli = world.portal.metadata_keys[:2], world.portal.metadata_keys[3]  # by_cli: another run
    world.delete(by_event, by_scan)
    assert handlers.handle_events(sqs_event(s3_notification(BUCKET, by_event)), LocalContext()) == {
        "batchItemFailures": []
    }
    fanned = handlers.handle_schedule({"action": "reconcile"}, LocalContext())
    assert fanned["shards_queued"] >= 1
    messages = sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10)["Messages"]
    shards = {"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]}
    assert handlers.handle_work(shards, LocalContext()) == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[by_event]: "quarantined", world.ids[by_scan]: "quarantined"}
    world.clock.advance(hours=2)
    purged = handlers.handle_schedule({"action": "purge"}, LocalContext())
    assert purged["purge"]["deleted"] == 2
    runtime.engine.dispose()

    world.delete(by_cli)
    scan = CliRunner().invoke(
        cli,
        ["scan", "--db-url", world.db_url, "--bucket", BUCKET, "--dataset-id", "10001"],
        env={"COLUMNS": "200", "RECONCILER_MAX_PURGE_FRACTION": "0.5"},
    )
    assert scan.exit_code == 0, scan.output
    assert world.ledger()[world.ids[by_cli]] == "quarantined"
    purge = CliRunner().invoke(cli, ["purge", "--db-url", world.db_url, "--bucket", BUCKET, "--no-dry-run"])
    assert purge.exit_code == 0 and "purged 0" in purge.output, purge.output  # within its grace period


def test_a_narrower_role_for_the_events_lambda(
    db_factory: DatabaseFactory, s3: Any, worker_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`grants --events-role`, applied by an owner that is not a superuser (RDS): the events handler quarantines and
    releases as that role; it may delete nothing, not even through the deleting function."""
    rds = RdsPortal(db_factory, worker_id.replace("-", "_"))
    rds.create()
    try:
        rds.set_up("grants-then-migrate")
        portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2))
        seed_bucket(s3, portal)
        owner = rds.engine(rds.owner)
        ids = write_rows(owner, portal)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        runtime = build_runtime({"RECONCILER_DB_URL": rds.url(rds.events), "RECONCILER_BUCKET": BUCKET})
        use_runtime(monkeypatch, runtime)
        key, data_file = portal.metadata_keys[0], portal.annotations[1].files[0].key
        s3.delete_object(Bucket=BUCKET, Key=key)
        s3.delete_object(Bucket=BUCKET, Key=data_file)
        event = sqs_event(s3_notification(BUCKET, key), s3_notification(BUCKET, data_file))
        assert handlers.handle_events(event, LocalContext()) == {"batchItemFailures": []}
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")
        created = s3_notification(BUCKET, key, "ObjectCreated:Put", when="2026-01-01T00:00:01.000Z")
        assert handlers.handle_events(sqs_event(created), LocalContext()) == {"batchItemFailures": []}
        with owner.connect() as conn:
            rows = conn.execute(
                text("SELECT annotation_id, status FROM annotation_reconciler.annotation_quarantine")
            ).all()
            missing = conn.execute(text("SELECT count(*) FROM annotation_reconciler.missing_annotation_file")).scalar()
        assert [tuple(r) for r in rows] == [(ids[key], "released")] and missing == 1
        for statement in (
            "DELETE FROM annotation",
            "DELETE FROM annotation_file",
            "CREATE TABLE planted (i int)",
            "DELETE FROM annotation_reconciler.annotation_quarantine",
            "SELECT * FROM annotation_reconciler_audit.delete_annotations('{1}', '{p}', 'cli', 'r', now())",
        ):
            with pytest.raises(Exception, match="permission denied"), runtime.engine.begin() as conn:
                conn.execute(text(statement))
        runtime.engine.dispose()
    finally:
        rds.drop()


def test_migrate_as_a_reconciler_role_says_who_migrates(db_factory: DatabaseFactory, worker_id: str) -> None:
    """The runtime role runs `migrate` (the earlier runbook's step): refused, naming the owner as who migrates, and
    nothing is created."""
    rds = RdsPortal(db_factory, worker_id.replace("-", "_"))
    rds.create()
    try:
        rds.grants()
        result = CliRunner().invoke(cli, ["migrate", "--db-url", rds.url(rds.role)])
        assert result.exit_code == 2, result.output
        assert "runs as the owner of the portal's tables" in result.output and "may create nothing" in result.output
        with rds.engine(rds.owner).connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname IN (:a, :b)"),
                {"a": LEDGER_SCHEMA, "b": AUDIT_SCHEMA},
            ).scalar()
        assert tables == 0
    finally:
        rds.drop()


@pytest.mark.parametrize("bad", ["Reconciler", "rec; DROP TABLE annotation", "1rec", 'rec"x', ""])
def test_grants_refuses_a_role_name_it_cannot_print_safely(bad: str) -> None:
    result = CliRunner().invoke(
        cli, ["grants", "--role", "rec", "--events-role", bad] if bad == "1rec" else ["grants", "--role", bad]
    )
    assert result.exit_code == 2 and "is not a plain role name" in result.output, result.output
    assert "GRANT" not in result.output


def test_grants_prints_no_create_and_no_write_on_portal_tables() -> None:
    printed = CliRunner().invoke(cli, ["grants", "--role", "rec", "--events-role", "rec_events"]).output
    statements = [line for line in printed.splitlines() if line and not line.startswith("--")]
    granting = [s for s in statements if s.startswith(("GRANT", "ALTER DEFAULT PRIVILEGES"))]
    assert statements and granting
    assert not [s for s in granting if re.search(r"CREATE|TRUNCATE|TRIGGER|GRANT ALL\b", s)]
    portal = [s for s in granting if "public." in s]
    assert portal and all(re.match(r"GRANT SELECT ON public\.", s) for s in portal)  # reads only
    assert not [s for s in granting if "DELETE" in s and f"SCHEMA {LEDGER_SCHEMA} " not in s]
    audit = [s for s in granting if AUDIT_SCHEMA in s and "USAGE ON SCHEMA" not in s]
    assert audit and all(re.search(r"GRANT (SELECT|EXECUTE) ON ", s) for s in audit)
    assert not [s for s in audit if "rec_events" in s]  # the events role: not even the audit
    assert "BEGIN;" in statements and statements[-1] == "COMMIT;"


def test_the_one_select_right_on_the_portal_is_needed(least_privilege: tuple[World, str, Engine]) -> None:
    world, role, owner = least_privilege
    with owner.begin() as conn:
        conn.execute(text(f"REVOKE SELECT ON run FROM {role}"))  # noqa: S608 (a role name of the fixture)
    key = world.portal.metadata_keys[0]
    world.delete(key)
    with pytest.raises(Exception, match="permission denied for table run"):
        role_reconciler(world).scan_shard(Scope(dataset_id=10001))
    assert world.ledger() == {}


@pytest.mark.parametrize(
    "broken", ["postgresql-pg8000://reconciler:{pw}@db.internal/portal", "reconciler:{pw}@db.internal/portal"]
)
def test_an_unparseable_database_url_does_not_echo_its_password(broken: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = broken.format(pw=PASSWORD)
    result = CliRunner().invoke(cli, ["status", "--db-url", url])
    assert result.exit_code == 2 and "cannot parse the database URL" in result.output
    assert PASSWORD not in result.output and "***@db.internal/portal" in result.output
    assert "reconciler" not in result.output  # everything between :// and the last @ is masked
    env = {"RECONCILER_DB_URL": url, "RECONCILER_BUCKET": BUCKET}
    monkeypatch.setattr(handlers.common, "runtime_factory", lambda: build_runtime(env))  # fails at the cold start
    with pytest.raises(ValueError, match="cannot parse the database URL") as info:
        handlers.handle_schedule({"action": "purge"}, LocalContext())
    assert PASSWORD not in str(info.value)


def test_a_missing_execute_right_fails_the_purge_whole(least_privilege: tuple[World, str, Engine]) -> None:
    """The deleting function is the role's only way to delete: without EXECUTE a purge batch deletes nothing, and
    each row, tried alone after the batch failed, fails too and waits with its error (issue 27), until the grant."""
    world, role, owner = least_privilege
    function = "annotation_reconciler_audit.delete_annotations(integer[], text[], text, text, timestamptz)"
    with owner.begin() as conn:
        conn.execute(text(f"REVOKE EXECUTE ON FUNCTION {function} FROM {role}"))
    INJECTED["EXECUTE on the deleting function revoked before a purge"] += 1
    reconciler = role_reconciler(world)
    keys = world.portal.metadata_keys[:2]
    world.delete(*keys)
    reconciler.apply_changes(removed(*keys, at=world.clock()))
    world.clock.advance(hours=2)
    before = table_counts(owner)
    assert sorted(reconciler.purge().failed) == sorted(world.ids[k] for k in keys)
    with owner.connect() as conn:
        errors = conn.execute(text("SELECT purge_error FROM annotation_reconciler.annotation_quarantine")).scalars()
        assert all("permission denied" in e for e in errors)
    assert table_counts(owner) == before and world.orphans() == 0  # the tables deleted from first, rolled back too
    assert set(world.ledger().values()) == {"quarantined"}
    with owner.begin() as conn:
        conn.execute(text(f"GRANT EXECUTE ON FUNCTION {function} TO {role}"))
    assert sorted(reconciler.purge().deleted) == sorted(world.ids[k] for k in keys)
