"""Apply the reconciler's migrations, keeping their own version table."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from annotation_reconciler.ledger import LEDGER_SCHEMA

VERSION_TABLE = "annotation_reconciler_alembic_version"
_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the reconciler's tables to ``revision``; returns the revision now applied."""
    config = _config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        opts = {"version_table": VERSION_TABLE, "version_table_schema": LEDGER_SCHEMA}
        return MigrationContext.configure(connection, opts=opts).get_current_revision()


INDEX_SQL = "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_annotation_s3_metadata_path ON annotation (s3_metadata_path)"


def metadata_path_index_ready(engine: Engine) -> bool:
    """Whether a valid index on annotation(s3_metadata_path) exists (whatever its name)."""
    with engine.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT 1 FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0] "
            "WHERE t.relname = 'annotation' AND a.attname = 's3_metadata_path' AND i.indisvalid LIMIT 1"
        ).first()
    return found is not None


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()
