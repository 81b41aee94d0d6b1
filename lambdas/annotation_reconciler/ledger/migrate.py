"""Apply the reconciler's migrations, keeping their own version table."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from annotation_reconciler.errors import LedgerSchemaError
from annotation_reconciler.ledger import AUDIT_SCHEMA, LEDGER_SCHEMA

VERSION_TABLE = "annotation_reconciler_alembic_version"
_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


_MIGRATOR_CHECK = (
    "SELECT pg_catalog.has_table_privilege(current_user, t, 'DELETE') "
    "FROM pg_catalog.unnest(ARRAY['public.annotation', 'public.annotation_shape', 'public.annotation_file', "
    "'public.annotation_author', 'public.annotation_method_link']) AS t "
    "WHERE pg_catalog.to_regclass(t) IS NOT NULL"
)


def require_migrator(connection: Connection) -> None:
    """Refuse (:class:`LedgerSchemaError`) a database without the portal's tables, or a role that does not hold
    the portal owner's rights on them: the migrations make a function that deletes with its owner's rights."""
    rights = connection.exec_driver_sql(_MIGRATOR_CHECK).scalars().all()
    if len(rights) < 5:
        raise LedgerSchemaError(
            "this database has no portal tables (public.annotation and its four child tables): connect to the "
            "portal's database, then migrate again"
        )
    if not all(rights):
        raise LedgerSchemaError(
            "`annotation-reconciler migrate` runs as the owner of the portal's tables (the deleting function it "
            "creates deletes with its owner's rights): connect as that role, e.g. the RDS master user, and "
            "migrate again; the reconciler's own roles may create nothing"
        )


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the reconciler's tables to ``revision``; returns the revision now applied."""
    config = _config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    """The revision applied, read from the version table (in the audit schema since 0006, else its old place)."""
    with engine.connect() as connection:
        for schema in (AUDIT_SCHEMA, LEDGER_SCHEMA):
            found = connection.exec_driver_sql(
                "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{VERSION_TABLE}",)
            ).scalar_one()
            if found:
                opts = {"version_table": VERSION_TABLE, "version_table_schema": schema}
                return MigrationContext.configure(connection, opts=opts).get_current_revision()
    return None


INDEX_SQL = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_annotation_s3_metadata_path ON public.annotation (s3_metadata_path)"
)


def metadata_path_index_ready(engine: Engine) -> bool:
    """Whether a valid index on the portal's ``public.annotation(s3_metadata_path)`` exists (whatever its name)."""
    with engine.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT 1 FROM pg_catalog.pg_index i "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = to_regclass('public.annotation') AND a.attname = 's3_metadata_path' "
            "AND i.indisvalid LIMIT 1"
        ).first()
    return found is not None


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()
