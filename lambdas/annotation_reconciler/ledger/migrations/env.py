"""Alembic environment for the reconciler's own tables.

Everything lives in the reconciler's two schemas (``annotation_reconciler``, ``annotation_reconciler_audit``), the
version table ``annotation_reconciler_alembic_version`` included (in the audit schema since 0006; an older one
is moved there), so the portal's own ``alembic_version`` and ``public`` are never read or written. The migrations
run as the owner of the portal's tables: the schemas are created here when missing, and the migrating session's
``search_path`` is the package's (``pg_catalog, public``), so every ledger name in a migration is qualified.

Before anything is changed, the schemas are checked for objects the migrations did not make
(:mod:`annotation_reconciler.ledger.integrity`): an owner's migration never runs beside a planted trigger.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from annotation_reconciler.errors import LedgerSchemaError
from annotation_reconciler.ledger import AUDIT_SCHEMA, LEDGER_SCHEMA, SCHEMAS, integrity
from annotation_reconciler.ledger.migrate import VERSION_TABLE, require_migrator


def _ensure_schemas(connection: Connection) -> None:
    require_migrator(connection)
    # CREATE SCHEMA IF NOT EXISTS checks the database's CREATE right before it looks: ask first.
    missing = [
        s
        for s in SCHEMAS
        if connection.exec_driver_sql("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (s,)).first() is None
    ]
    if missing:
        allowed = connection.exec_driver_sql(
            "SELECT pg_catalog.has_database_privilege(current_database(), 'CREATE')"
        ).scalar_one()
        if not allowed:
            raise LedgerSchemaError(
                f"the schema {missing[0]} does not exist and this role may not create it: migrate as the owner of "
                "the portal's database and tables"
            )
    for schema in missing:
        connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    # Before 0006 the version table lived in the working schema, which the reconciler's roles write. It is copied
    # into the audit schema, not moved: a moved table would keep the rights granted on it there.
    legacy = connection.exec_driver_sql(
        "SELECT to_regclass(%s), to_regclass(%s)",
        (f"{LEDGER_SCHEMA}.{VERSION_TABLE}", f"{AUDIT_SCHEMA}.{VERSION_TABLE}"),
    ).one()
    if legacy[0] is not None and legacy[1] is None:
        old, new = f'"{LEDGER_SCHEMA}"."{VERSION_TABLE}"', f'"{AUDIT_SCHEMA}"."{VERSION_TABLE}"'
        connection.exec_driver_sql(f"CREATE TABLE {new} (LIKE {old} INCLUDING ALL)")
        connection.exec_driver_sql(f"INSERT INTO {new} SELECT * FROM {old}")  # noqa: S608 (constants)
        connection.exec_driver_sql(f"DROP TABLE {old}")
    connection.commit()


def _run(connection: Connection) -> None:
    integrity.require_clean(connection, "migrate")
    connection.commit()
    _ensure_schemas(connection)
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        version_table_schema=AUDIT_SCHEMA,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always given by annotation_reconciler.ledger.migrate
    raise RuntimeError("run the migrations through `annotation-reconciler migrate`")
_run(connection)
