"""Alembic environment for the reconciler's own tables.

The version table is ``annotation_reconciler_alembic_version`` so that the portal's own
``alembic_version`` is never read or written.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from annotation_reconciler.ledger.migrate import VERSION_TABLE


def _run(connection: Connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always given by annotation_reconciler.ledger.migrate
    raise RuntimeError("run the migrations through `annotation-reconciler migrate`")
_run(connection)
