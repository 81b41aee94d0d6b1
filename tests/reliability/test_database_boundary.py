"""The database boundary holds (issue 24), tested as RDS runs it: the portal owner is not a superuser.

An attacker holds the runtime role's password (or the events role's). It tries to plant code the owner's
sessions would run (a function, an operator, a table, a trigger, in every schema), to forge what ``restore`` puts
back (every ledger column it can write), and to keep what an earlier version let it own. Then the owner runs its
commands (``migrate``, ``status``, ``restore`` dry run and not) and the test shows that nothing ran as the owner and
nothing invented reached the portal.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

import annotation_reconciler
from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import SEARCH_PATH_SQL
from annotation_reconciler.ledger import AUDIT_SCHEMA, LEDGER_SCHEMA
from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.postgres import embedded_bindir
from annotation_reconciler.local.synthetic import PortalSpec, build_portal
from annotation_reconciler.local.synthetic_rows import write_rows
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage
from support.rds import ORDERS, SERVERS, RdsPortal
from support.seed import seed_bucket
from support.world import BUCKET, Clock, dump, removed

PORTAL_TABLES = ("annotation", "annotation_shape", "annotation_file", "annotation_author", "annotation_method_link")
LEDGER_TABLES = (
    "annotation_quarantine",
    "missing_annotation_file",
    "annotation_resurrection",
    "blind_prefix",
    "untracked_metadata",
)
PACKAGE = Path(annotation_reconciler.__file__).parent
migration_0006 = importlib.import_module(
    "annotation_reconciler.ledger.migrations.versions.0006_deletion_audit_and_definer"
)


def rds_on(request: pytest.FixtureRequest, server: str, worker_id: str) -> Iterator[RdsPortal]:
    if server == "newest":
        factory, bindir = request.getfixturevalue("newest_db_factory"), embedded_bindir()
    else:
        factory, bindir = request.getfixturevalue("db_factory"), None
    portal = RdsPortal(factory, worker_id.replace("-", "_"), bindir)
    portal.create()
    yield portal
    portal.drop()


@pytest.fixture
def rds(request: pytest.FixtureRequest, worker_id: str) -> Iterator[RdsPortal]:
    """An RDS-like portal database on the suite's PostgreSQL (15)."""
    yield from rds_on(request, "system", worker_id)


@pytest.fixture(params=SERVERS)
def rds_any(request: pytest.FixtureRequest, worker_id: str) -> Iterator[RdsPortal]:
    """The same on the suite's PostgreSQL (15) and on the newest the dev extras ship (18: role membership and
    default privileges follow the rules of 16 and later)."""
    yield from rds_on(request, request.param, worker_id)


def set_up_portal(rds: RdsPortal, s3: Any) -> tuple[RdsPortal, dict[str, int]]:
    """The runbook's database steps done (grants, then migrate), a small portal in the tables and the bucket."""
    rds.set_up("grants-then-migrate")
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=3))
    seed_bucket(s3, portal)
    return rds, write_rows(rds.engine(rds.owner), portal)


@pytest.fixture
def ready(rds: RdsPortal, s3: Any) -> tuple[RdsPortal, dict[str, int]]:
    return set_up_portal(rds, s3)


@pytest.fixture
def ready_any(rds_any: RdsPortal, s3: Any) -> tuple[RdsPortal, dict[str, int]]:
    return set_up_portal(rds_any, s3)


def reconciler_as(rds: RdsPortal, user: str, s3: Any, clock: Clock) -> Reconciler:
    settings = Settings(
        bucket=BUCKET,
        s3_prefix=f"s3://{BUCKET}/",
        db_url=rds.url(user),
        dry_run=False,
        grace_period_hours=1,
        max_purge_fraction=0.5,
    )
    return Reconciler(Context(rds.engine(user), S3Storage(s3, BUCKET), settings, clock=clock))


def purge_one(rds: RdsPortal, s3: Any, ids: dict[str, int], key: str) -> int:
    """As the runtime role: the key's metadata is deleted, the scan quarantines it, the purge deletes it."""
    clock = Clock()
    s3.delete_object(Bucket=BUCKET, Key=key)
    role = reconciler_as(rds, rds.role, s3, clock)
    assert role.scan_shard(Scope(dataset_id=10001)).quarantined == [ids[key]]
    clock.advance(hours=2)
    assert role.purge().deleted == [ids[key]]
    return ids[key]


def owner_cli(rds: RdsPortal, *args: str) -> Any:
    return CliRunner().invoke(cli, [*args, "--db-url", rds.url(rds.owner)])


def escalations(rds: RdsPortal) -> list[str]:
    """Every right the reconciler's roles hold that they should not: what a payload run as the owner would give."""
    with rds.engine(rds.owner).connect() as conn:
        rows = conn.execute(
            text("""
            SELECT r.rolname || ' is a member of ' || o.rolname
            FROM pg_roles r CROSS JOIN pg_roles o
            WHERE r.rolname IN (:role, :events) AND o.rolname <> r.rolname AND o.rolname NOT LIKE 'pg\\_%'
              AND pg_has_role(r.rolname, o.oid, 'MEMBER')
            UNION ALL
            SELECT r || ' may ' || p || ' ' || t FROM unnest(CAST(:roles AS text[])) r,
              unnest(CAST(:tables AS text[])) t, unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER']) p
            WHERE to_regclass(t) IS NOT NULL AND has_table_privilege(r, t, p)
            UNION ALL
            SELECT r || ' may create in ' || n.nspname FROM unnest(CAST(:roles AS text[])) r, pg_namespace n
            WHERE has_schema_privilege(r, n.oid, 'CREATE')
            UNION ALL
            SELECT pg_get_userbyid(c.relowner) || ' owns ' || c.relname FROM pg_class c
            WHERE pg_get_userbyid(c.relowner) IN (:role, :events)
            UNION ALL
            SELECT pg_get_userbyid(p.proowner) || ' owns ' || p.proname FROM pg_proc p
            WHERE pg_get_userbyid(p.proowner) IN (:role, :events)
            UNION ALL
            SELECT r.rolname || ' has ' || CASE WHEN r.rolsuper THEN 'SUPERUSER' ELSE 'CREATEROLE' END
            FROM pg_roles r WHERE r.rolname IN (:role, :events) AND (r.rolsuper OR r.rolcreaterole)
            """),
            {
                "role": rds.role,
                "events": rds.events,
                "roles": [rds.role, rds.events],
                "tables": [f"public.{t}" for t in (*PORTAL_TABLES, "run", "dataset")]
                + [f"{AUDIT_SCHEMA}.deleted_annotation", f"{AUDIT_SCHEMA}.annotation_reconciler_alembic_version"],
            },
        ).scalars()
        return sorted(rows)


# --- the runbook, with an owner that is not a superuser --------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
def test_the_runbook_works_with_an_owner_that_is_not_a_superuser(rds_any: RdsPortal, s3: Any, order: str) -> None:
    """Grants applied with psql -v ON_ERROR_STOP=1 before or after the owner's migrate; then scan and purge as the
    runtime role, events as the events role, status and restore as the owner; the roles own and may create
    nothing."""
    rds = rds_any
    rds.set_up(order)
    with rds.engine(rds.owner).connect() as conn:
        assert conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar() is False
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=3))
    seed_bucket(s3, portal)
    ids = write_rows(rds.engine(rds.owner), portal)
    before = dump(rds.engine(rds.owner))
    victim = purge_one(rds, s3, ids, portal.metadata_keys[0])
    events = reconciler_as(rds, rds.events, s3, Clock())  # the events Lambda's role quarantines by event
    key = portal.metadata_keys[4]
    s3.delete_object(Bucket=BUCKET, Key=key)
    assert events.apply_changes(removed(key)).quarantined == [ids[key]]
    status = owner_cli(rds, "status", "--output", "json")
    assert status.exit_code == 0, status.output
    restored = owner_cli(rds, "restore", "--annotation-id", str(victim), "--no-dry-run", "--by", "owner")
    assert restored.exit_code == 0 and "restored 1 annotation (" in restored.output, restored.output
    assert dump(rds.engine(rds.owner)) == before
    assert escalations(rds) == []
    again = rds.psql(CliRunner().invoke(cli, ["grants", "--role", rds.role, "--events-role", rds.events]).output)
    assert again.returncode == 0, again.stderr  # idempotent
    assert "already at" in rds.migrate()


def test_grants_for_a_missing_role_stop_psql(rds_any: RdsPortal) -> None:
    """psql -v ON_ERROR_STOP=1 stops at the first error and applies nothing (the SQL is one transaction)."""
    rds = rds_any
    printed = CliRunner().invoke(cli, ["grants", "--role", "nobody_here"]).output
    applied = rds.psql(printed)
    assert applied.returncode != 0 and 'role "nobody_here" does not exist' in applied.stderr
    with rds.engine(rds.owner).connect() as conn:
        assert conn.execute(text("SELECT to_regnamespace(:s)"), {"s": LEDGER_SCHEMA}).scalar() is None


def test_migrate_as_a_reconciler_role_is_refused(ready: tuple[RdsPortal, dict[str, int]]) -> None:
    rds, _ = ready
    for user in (rds.role, rds.events):
        result = CliRunner().invoke(cli, ["migrate", "--db-url", rds.url(user)])
        assert result.exit_code == 2, result.output
        assert "runs as the owner of the portal's tables" in result.output


# --- planting ------------------------------------------------------------------------------------------------

PLANTS = [
    "CREATE FUNCTION {schema}.texteq_trap(varchar, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
    "CREATE OPERATOR {schema}.= (LEFTARG = varchar, RIGHTARG = text, FUNCTION = pg_catalog.texteq)",
    "CREATE TABLE {schema}.annotation (id integer)",
    "CREATE VIEW {schema}.annotation_quarantine AS SELECT 1 AS id",
    "CREATE TYPE {schema}.planted AS (x integer)",
    "CREATE SEQUENCE {schema}.planted_seq",
]
ATTACKS = [
    *(p.format(schema=s) for p in PLANTS for s in ("public", LEDGER_SCHEMA, AUDIT_SCHEMA)),
    "CREATE SCHEMA planted",
    "CREATE TRIGGER t BEFORE UPDATE ON annotation_reconciler.annotation_quarantine "
    "FOR EACH ROW EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()",
    "CREATE TRIGGER t BEFORE INSERT ON public.annotation FOR EACH ROW EXECUTE FUNCTION "
    "pg_catalog.suppress_redundant_updates_trigger()",
    "ALTER TABLE annotation_reconciler.annotation_quarantine ADD COLUMN x integer",
    "ALTER TABLE annotation_reconciler.annotation_quarantine ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY p ON annotation_reconciler.annotation_quarantine USING (true)",
    "CREATE RULE r AS ON UPDATE TO annotation_reconciler.annotation_quarantine DO INSTEAD NOTHING",
    "TRUNCATE annotation_reconciler.annotation_quarantine",
    "TRUNCATE annotation_reconciler_audit.deleted_annotation",
    "UPDATE annotation_reconciler_audit.deleted_annotation SET snapshot = '{}'",
    "INSERT INTO annotation_reconciler_audit.deleted_annotation (annotation_id, s3_metadata_path, source, reason,"
    " deleted_at, deleted_by, snapshot) VALUES (1, 'p', 'cli', 'r', now(), 'x', '{}')",
    "DELETE FROM annotation_reconciler_audit.deleted_annotation",
    "UPDATE annotation_reconciler_audit.annotation_reconciler_alembic_version SET version_num = '0001'",
    "DELETE FROM public.annotation",
    "DELETE FROM public.annotation_file",
    "UPDATE public.annotation SET object_name = 'x'",
    "INSERT INTO public.annotation_author (annotation_id, name) VALUES (1, 'x')",
    "ALTER FUNCTION annotation_reconciler_audit.delete_annotations(integer[], text[], text, text, timestamptz) "
    "SECURITY INVOKER",
    "CREATE OR REPLACE FUNCTION annotation_reconciler_audit.delete_annotations(integer[], text[], text, text, "
    "timestamptz) RETURNS void LANGUAGE sql AS ''",
    "GRANT rec_placeholder TO CURRENT_USER",
]


@pytest.mark.parametrize("who", ["role", "events"])
def test_the_reconciler_roles_can_plant_and_forge_nothing(
    ready_any: tuple[RdsPortal, dict[str, int]], who: str
) -> None:
    """Each statement an attacker with the role's password would try: refused, whatever the schema."""
    rds, _ = ready_any
    user = rds.role if who == "role" else rds.events
    engine = rds.engine(user)
    refused = []
    for statement in ATTACKS:
        statement = statement.replace("rec_placeholder", rds.owner)
        try:
            with engine.begin() as conn:
                conn.execute(text(statement))
        except Exception as exc:
            refused.append(bool(re.search(r"permission denied|must be (the )?owner|must have admin", str(exc))))
        else:
            refused.append(False)
    assert [s for s, ok in zip(ATTACKS, refused, strict=True) if not ok] == []
    assert escalations(rds) == []


# --- forging what restore puts back --------------------------------------------------------------------------


def test_forged_ledger_rows_make_restore_insert_nothing_invented(
    ready: tuple[RdsPortal, dict[str, int]], s3: Any
) -> None:
    """The runtime role rewrites every column of the ledger it can write and invents purged rows; the owner's
    restore (dry run and not) puts back exactly the rows the deletion removed, nothing else."""
    rds, ids = ready
    owner = rds.engine(rds.owner)
    before = dump(owner)
    keys = sorted(ids, key=lambda k: ids[k])
    victim = purge_one(rds, s3, ids, keys[0])
    role = rds.engine(rds.role)
    with role.begin() as conn:
        columns = conn.execute(
            text("""SELECT table_name, column_name, data_type FROM information_schema.columns
                    WHERE table_schema = :s ORDER BY table_name, ordinal_position"""),
            {"s": LEDGER_SCHEMA},
        ).all()
        forged = 0
        for table, column, data_type in columns:
            if column == "id" or data_type not in ("text", "character varying", "jsonb"):
                continue
            value = '{"annotation": {"id": 424242}}' if data_type == "jsonb" else "forged"
            if column in ("status",) or (table, column) == ("annotation_quarantine", "source"):
                continue  # checked values: forged below through the allowed ones
            forged += conn.execute(
                text(f"UPDATE {LEDGER_SCHEMA}.{table} SET {column} = CAST(:v AS {data_type})"),  # noqa: S608
                {"v": value},
            ).rowcount
        conn.execute(
            text(f"""UPDATE {LEDGER_SCHEMA}.annotation_quarantine
                     SET annotation_id = 424242, dataset_id = 10001, status = 'purged', source = 'cli'""")  # noqa: S608
        )
        conn.execute(
            text(f"""INSERT INTO {LEDGER_SCHEMA}.annotation_quarantine (annotation_id, dataset_id, s3_metadata_path,
                       source, reason, status, detected_at, purge_after, resolved_at)
                     VALUES (777, 10001, 's3://x/forged.json', 'cli', 'forged', 'purged', now(), now(), now())""")  # noqa: S608
        )
    assert forged > 0
    dry = owner_cli(rds, "restore", "--dataset-id", "10001")
    assert dry.exit_code == 0 and "would restore 1 annotation (" in dry.output and str(victim) in dry.output, dry.output
    for invented in ("424242", "777"):
        refused = owner_cli(rds, "restore", "--annotation-id", invented, "--no-dry-run")
        assert refused.exit_code == 1 and "no purged annotation matches" in refused.output, refused.output
    done = owner_cli(rds, "restore", "--dataset-id", "10001", "--no-dry-run")
    assert done.exit_code == 0, done.output
    assert dump(owner) == before  # the real row and its children back, nothing invented
    status = owner_cli(rds, "status", "--output", "json")
    assert status.exit_code == 0, status.output
    assert escalations(rds) == []


def test_a_deletion_the_role_calls_itself_is_audited_and_undone(ready: tuple[RdsPortal, dict[str, int]]) -> None:
    """The role may delete annotations (its job), only through the function: whatever source and reason it
    claims, the audit holds the real rows and who called, and restore puts them back exactly."""
    rds, ids = ready
    owner = rds.engine(rds.owner)
    before = dump(owner)
    victims = sorted(ids.values())[:2]
    with owner.connect() as conn:
        paths = dict(
            conn.execute(text("SELECT id, s3_metadata_path FROM annotation WHERE id = ANY(:i)"), {"i": victims}).all()
        )
    with rds.engine(rds.role).begin() as conn:
        gone = (
            conn.execute(
                text("""SELECT r_annotation_id FROM annotation_reconciler_audit.delete_annotations(
                      CAST(:ids AS integer[]), CAST(:paths AS text[]), 'cli', 'I say so', now())"""),
                {"ids": victims, "paths": [paths[i] for i in victims]},
            )
            .scalars()
            .all()
        )
    assert sorted(gone) == victims
    with owner.connect() as conn:
        who = conn.execute(text("SELECT DISTINCT deleted_by FROM annotation_reconciler_audit.deleted_annotation")).all()
    assert who == [(rds.role,)]
    assert owner_cli(rds, "restore", "--dataset-id", "10001", "--no-dry-run").exit_code == 0
    assert dump(owner) == before
    events = rds.engine(rds.events)
    denied = "permission denied for schema annotation_reconciler_audit"
    with pytest.raises(Exception, match=denied), events.begin() as conn:
        conn.execute(
            text("SELECT * FROM annotation_reconciler_audit.delete_annotations('{1}', '{p}', 'cli', 'r', now())")
        )


def test_restore_puts_back_one_row_per_natural_key(ready: tuple[RdsPortal, dict[str, int]], s3: Any) -> None:
    """Purged, re-ingested under a new id, purged again: two snapshots share a natural key. Restoring the dataset
    is refused, naming both ids; restoring one by id works."""
    rds, ids = ready
    owner = rds.engine(rds.owner)
    key = sorted(ids, key=lambda k: ids[k])[0]
    first = purge_one(rds, s3, ids, key)
    with owner.begin() as conn:  # the importer brings it back under a new id (same natural key)
        second = conn.execute(
            text("""INSERT INTO public.annotation SELECT (jsonb_populate_record(NULL::public.annotation,
                      jsonb_set(snapshot -> 'annotation', '{id}', to_jsonb(9001)))).*
                    FROM annotation_reconciler_audit.deleted_annotation WHERE annotation_id = :a RETURNING id"""),
            {"a": first},
        ).scalar_one()
    purged_again = purge_one(rds, s3, {key: second}, key)
    assert purged_again == second == 9001
    refused = owner_cli(rds, "restore", "--dataset-id", "10001", "--no-dry-run")
    assert refused.exit_code == 1, refused.output
    assert f"annotations {first}, {second} share the natural key" in refused.output
    assert f"({second} was purged last)" in refused.output
    one = owner_cli(rds, "restore", "--annotation-id", str(second), "--no-dry-run")
    assert one.exit_code == 0, one.output
    with owner.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM public.annotation WHERE id IN (:a, :b)"), {"a": first, "b": second}
            ).scalar()
            == 1
        )


# --- what an earlier version let the role own ------------------------------------------------------------------

PAYLOAD = """
CREATE FUNCTION annotation_reconciler.payload() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'GRANT INSERT, UPDATE ON public.annotation TO {role}';
  EXECUTE 'GRANT {owner} TO {role}';
  RETURN NEW;
END $$;
CREATE TRIGGER payload BEFORE UPDATE OR INSERT ON annotation_reconciler.annotation_quarantine
  FOR EACH ROW EXECUTE FUNCTION annotation_reconciler.payload();
CREATE FUNCTION annotation_reconciler.trap_eq(varchar, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'GRANT {owner} TO {role}';
  RETURN $1::text = $2;
END $$;
CREATE OPERATOR annotation_reconciler.= (LEFTARG = varchar, RIGHTARG = text, FUNCTION = annotation_reconciler.trap_eq);
CREATE TABLE annotation_reconciler.annotation (LIKE public.annotation);
"""


def test_what_a_role_once_owned_is_taken_back_and_nothing_it_planted_runs(
    ready_any: tuple[RdsPortal, dict[str, int]], s3: Any
) -> None:
    """The state an earlier version left: the role migrated (owns the ledger's tables, the version table in the
    working schema) and could create there; it planted a trigger, an operator and a table. The owner applies
    the new grants with psql: ownership comes back; migrate, status and restore refuse while the planted objects
    exist, naming them; nothing planted ran as the owner; once dropped, migrate moves the version table."""
    rds, ids = ready_any
    victim = purge_one(rds, s3, ids, sorted(ids, key=lambda k: ids[k])[0])
    with db_factory_admin(rds.factory, rds.name) as admin:  # what the earlier version's runbook had made
        for table in LEDGER_TABLES:
            admin.execute(text(f"ALTER TABLE {LEDGER_SCHEMA}.{table} OWNER TO {rds.role}"))
        admin.execute(
            text(f"ALTER TABLE {AUDIT_SCHEMA}.annotation_reconciler_alembic_version SET SCHEMA {LEDGER_SCHEMA}")
        )
        admin.execute(text(f"ALTER TABLE {LEDGER_SCHEMA}.annotation_reconciler_alembic_version OWNER TO {rds.role}"))
        admin.execute(text(f"GRANT CREATE ON SCHEMA {LEDGER_SCHEMA} TO {rds.role}"))
    with rds.engine(rds.role).begin() as conn:
        conn.connection.dbapi_connection.cursor().execute(PAYLOAD.format(role=rds.role, owner=rds.owner))  # type: ignore[union-attr]
    rds.grants()  # the new grants, with psql -v ON_ERROR_STOP=1, by the owner that is not a superuser
    for args in (
        ("migrate",),
        ("status",),
        ("restore", "--dataset-id", "10001"),
        ("restore", "--dataset-id", "10001", "--no-dry-run"),
    ):
        refused = owner_cli(rds, *args)
        assert refused.exit_code in (1, 2), (args, refused.output)
        for planted in (
            "trigger payload on annotation_reconciler.annotation_quarantine",
            "operator annotation_reconciler.=",
            "relation annotation_reconciler.annotation:",
            "function annotation_reconciler.payload()",
        ):
            assert planted in refused.output, (args, refused.output)
    assert escalations(rds) == []  # nothing planted ran as the owner
    with rds.engine(rds.owner).begin() as conn:  # the owner drops what it was shown
        conn.execute(text("DROP TRIGGER payload ON annotation_reconciler.annotation_quarantine"))
        conn.execute(text("DROP FUNCTION annotation_reconciler.payload()"))
        conn.execute(text("DROP OPERATOR annotation_reconciler.= (varchar, text)"))
        conn.execute(text("DROP FUNCTION annotation_reconciler.trap_eq(varchar, text)"))
        conn.execute(text("DROP TABLE annotation_reconciler.annotation"))
    assert "already at" in rds.migrate()
    with rds.engine(rds.owner).connect() as conn:
        assert conn.execute(
            text(f"SELECT to_regclass('{AUDIT_SCHEMA}.annotation_reconciler_alembic_version') IS NOT NULL")
        ).scalar()
    restored = owner_cli(rds, "restore", "--annotation-id", str(victim), "--no-dry-run")
    assert restored.exit_code == 0, restored.output
    assert escalations(rds) == []


def db_factory_admin(factory: DatabaseFactory, name: str) -> Any:
    """A superuser connection to database ``name`` (the tests' stand-in for what an earlier version left)."""
    from annotation_reconciler.db import make_engine

    return make_engine(factory.url_for(name)).begin()


# --- every session's name lookup -----------------------------------------------------------------------------


def test_every_session_looks_names_up_where_no_reconciler_role_can_write(
    ready: tuple[RdsPortal, dict[str, int]],
) -> None:
    rds, _ = ready
    for user in (rds.owner, rds.role, rds.events):
        with rds.engine(user).connect() as conn:
            path = conn.execute(text("SELECT current_schemas(false)")).scalar_one()
            writable = (
                conn.execute(
                    text("""SELECT s FROM unnest(current_schemas(true)) s, unnest(CAST(:roles AS text[])) r
                        WHERE s NOT LIKE 'pg\\_temp%' AND has_schema_privilege(r, s, 'CREATE')"""),
                    {"roles": [rds.role, rds.events]},
                )
                .scalars()
                .all()
            )
        assert path == ["pg_catalog", "public"] and writable == []
    assert SEARCH_PATH_SQL == "SET search_path TO pg_catalog, public"


def test_every_ledger_name_in_the_package_is_schema_qualified() -> None:
    """Static: no SQL in the package names a ledger table without its schema (its sessions' search path does not
    hold the ledger's schemas, so an unqualified name would resolve elsewhere, or fail)."""
    names = "|".join((*LEDGER_TABLES, "deleted_annotation", "annotation_reconciler_alembic_version"))
    pattern = re.compile(rf"\b(FROM|JOIN|INTO|UPDATE|TABLE|ON)\s+({names})\b")
    found = [
        f"{path.relative_to(PACKAGE)}: {m.group(0)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for m in pattern.finditer(path.read_text())
    ]
    assert found == []


def test_the_deleting_function_runs_with_a_fixed_search_path_and_qualified_names(
    ready: tuple[RdsPortal, dict[str, int]],
) -> None:
    rds, _ = ready
    with rds.engine(rds.owner).connect() as conn:
        definer, config, owner, public = conn.execute(
            text("""SELECT p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner),
                           has_function_privilege('public', p.oid, 'EXECUTE')
                    FROM pg_proc p WHERE p.oid = to_regprocedure(
                      'annotation_reconciler_audit.delete_annotations(integer[], text[], text, text, timestamptz)')""")
        ).one()
    assert (definer, config, owner, public) == (True, ["search_path=pg_catalog, pg_temp"], rds.owner, False)
    body = migration_0006.DELETE_FUNCTION
    # every relation it reads or writes, i.e. each name after FROM/JOIN/INTO/UPDATE/USING that is not a function
    # call, a plpgsql variable (v_…) or one of its own CTEs, is schema-qualified
    targets = re.findall(r"\b(?:FROM|JOIN|INTO|UPDATE|USING)\s+([a-z_][a-z0-9_.]*+)(?!\()", body)
    ctes = {"d", "parts", "grouped", "written"}
    relations = [t for t in targets if not t.startswith("v_") and t not in ctes]
    assert "public.annotation" in relations and "annotation_reconciler_audit.deleted_annotation" in relations
    assert [t for t in relations if "." not in t] == []
