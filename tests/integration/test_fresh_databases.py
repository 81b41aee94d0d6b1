"""The db_url fixture's databases (tests/support/fresh_databases.py): made one test ahead, each one new."""

from __future__ import annotations

from sqlalchemy import text

from annotation_reconciler.db import make_engine
from annotation_reconciler.local.databases import DatabaseFactory
from support.fresh_databases import FreshDatabases


def _left_over(url: str, leave: bool = False) -> bool:
    """Whether the database holds a table a test left (``leave``: leave it), beside the migrated schema."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if leave:
                conn.execute(text("CREATE TABLE public.left_over (n int)"))
            migrated = conn.execute(text("SELECT to_regclass('annotation_reconciler.annotation_quarantine')"))
            assert migrated.scalar_one() is not None
            return conn.execute(text("SELECT to_regclass('public.left_over')")).scalar_one() is not None
    finally:
        engine.dispose()


def test_each_database_taken_is_a_fresh_copy_even_when_its_name_comes_round_again(
    db_factory: DatabaseFactory, worker_id: str
) -> None:
    databases = FreshDatabases(db_factory)
    prefix = f"fresh_{worker_id}"
    try:
        first = databases.take(prefix)
        assert _left_over(first, leave=True)
        second = databases.take(prefix)  # made while the "test" above ran
        assert second != first and not _left_over(second)
        third = databases.take(prefix)
        assert third == first  # the name comes round again ...
        assert not _left_over(third)  # ... on a new copy of the template, not on what the first test left
    finally:
        databases.close()
    for name in (f"{prefix}_0", f"{prefix}_1"):
        db_factory.drop(name)
