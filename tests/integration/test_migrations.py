"""The reconciler's migrations: idempotent, own version table, the portal's alembic_version untouched."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text

from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import make_engine
from annotation_reconciler.ledger import migrate
from annotation_reconciler.local.databases import DatabaseFactory, create_portal_schema


@pytest.fixture
def portal_only(db_factory: DatabaseFactory, worker_id: str) -> tuple[str, Engine]:
    """A database with only the portal's tables and the portal's own alembic_version row."""
    url = db_factory.empty(f"portal_only_{worker_id}")
    engine = make_engine(url)
    create_portal_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('portal_rev_42')"))
    return url, engine


def test_migrate_twice_keeps_portal_version(portal_only: tuple[str, Engine]) -> None:
    url, engine = portal_only
    runner = CliRunner()
    first = runner.invoke(cli, ["migrate", "--db-url", url])
    assert first.exit_code == 0, first.output
    assert f"to {migrate.head_revision()}" in first.output
    second = runner.invoke(cli, ["migrate", "--db-url", url])
    assert second.exit_code == 0, second.output
    assert "already at" in second.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["portal_rev_42"]
        ours = (
            conn.execute(
                text("SELECT version_num FROM annotation_reconciler_audit.annotation_reconciler_alembic_version")
            )
            .scalars()
            .all()
        )
    assert ours == [migrate.head_revision()]
    tables = set(inspect(engine).get_table_names(schema="annotation_reconciler"))
    audit = set(inspect(engine).get_table_names(schema="annotation_reconciler_audit"))
    assert {"annotation_quarantine", "missing_annotation_file"} <= tables
    assert audit == {"deleted_annotation", "annotation_reconciler_alembic_version"}
    assert not tables & set(inspect(engine).get_table_names())  # nothing of ours in public
    engine.dispose()


def test_metadata_path_index_created_once_and_valid(portal_only: tuple[str, Engine]) -> None:
    _, engine = portal_only
    migrate.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = 'ix_annotation_s3_metadata_path'"
            )
        ).all()
    assert rows == [(True,)]
    engine.dispose()


def test_existing_index_is_kept(portal_only: tuple[str, Engine]) -> None:
    """A portal that already made the index (same name) keeps it: no error, no duplicate."""
    _, engine = portal_only
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_annotation_s3_metadata_path ON annotation (s3_metadata_path)"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        count = conn.execute(
            text(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'annotation' AND indexdef LIKE '%s3_metadata_path%'"
            )
        ).scalar()
    assert count == 1
    engine.dispose()


def test_open_quarantine_row_unique_per_annotation(engine: Engine) -> None:
    insert = text(
        "INSERT INTO annotation_reconciler.annotation_quarantine (annotation_id, s3_metadata_path, "
        "source, reason, status, detected_at,"
        " purge_after) VALUES (7, 'k', 'event', 'r', :status, now(), now())"
    )
    with engine.begin() as conn:
        conn.execute(insert, {"status": "quarantined"})
        conn.execute(insert, {"status": "released"})
        conn.execute(insert, {"status": "released"})
    with pytest.raises(Exception, match="uq_annotation_quarantine_open"), engine.begin() as conn:
        conn.execute(insert, {"status": "held"})


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, "no database given"),
        (["--db-url", "mysql://u@localhost/portal"], {}, "pg8000 only"),
        (["--db-url", "postgresql+psycopg2://u@localhost/portal"], {}, "pg8000 only"),
        (["--db-url", "postgresql+pg8000://u@127.0.0.1:1/portal"], {}, "cannot connect"),
        (["--db-url", "::::"], {}, "cannot parse"),
    ],
)
def test_migrate_bad_url_is_one_clear_line(args: list[str], env: dict[str, str], expected: str) -> None:
    result = CliRunner().invoke(cli, ["migrate", *args], env={"RECONCILER_DB_URL": "", **env})
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and expected in lines[0], result.output
