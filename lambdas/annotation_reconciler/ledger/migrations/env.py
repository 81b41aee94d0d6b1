"""Alembic environment for the reconciler's own tables.

Everything lives in the ledger schema (``annotation_reconciler``), the version table
``annotation_reconciler_alembic_version`` included, so that the portal's own ``alembic_version``
and ``public`` schema are never read or written. The schema is created here when missing (by a
role allowed to); a least-privilege role finds it made by the SQL of ``annotation-reconciler grants``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from annotation_reconciler.errors import LedgerSchemaError
from annotation_reconciler.ledger import LEDGER_SCHEMA
from annotation_reconciler.ledger.migrate import VERSION_TABLE


def _ensure_schema(connection: Connection) -> None:
    # CREATE SCHEMA IF NOT EXISTS checks the database's CREATE right before it looks: ask first.
    found = connection.exec_driver_sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (LEDGER_SCHEMA,)).first()
    if found is None:
        allowed = connection.exec_driver_sql("SELECT has_database_privilege(current_database(), 'CREATE')").scalar_one()
        if not allowed:
            raise LedgerSchemaError(
                f"the schema {LEDGER_SCHEMA} does not exist and this role may not create it: have the database "
                "owner run the SQL printed by `annotation-reconciler grants --role ROLE`, then migrate again"
            )
        connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{LEDGER_SCHEMA}"')
    connection.commit()


def _run(connection: Connection) -> None:
    _ensure_schema(connection)
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        version_table_schema=LEDGER_SCHEMA,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always given by annotation_reconciler.ledger.migrate
    raise RuntimeError("run the migrations through `annotation-reconciler migrate`")
_run(connection)
