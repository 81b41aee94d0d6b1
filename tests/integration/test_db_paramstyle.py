"""pg8000 rewrites each statement's ``%s`` into ``$n`` on every execution; ``db`` remembers the rewrite per text."""

from __future__ import annotations

import pg8000.dbapi
import pg8000.legacy

from annotation_reconciler import db
from annotation_reconciler.db import driver
from annotation_reconciler.ledger import event_batch

STATEMENTS = [
    "SELECT 1",
    "SELECT %s, %s FROM t WHERE a = %s",
    "SELECT '%%s', \"x%%\" FROM t -- a comment with %%s\nWHERE b = %s AND c LIKE 'a%%'",
    "SELECT $$%%s$$, %s",
    event_batch._RELEASE_AND_LAPSE_SQL.replace(":", "%s:"),  # long, with quotes and COLLATE "C"
]


def test_the_remembered_rewrite_is_pg8000s_own_for_every_statement_and_leaves_the_arguments_alone() -> None:
    for statement in STATEMENTS:
        args = ("a", 1, None)
        assert driver._cached_convert_paramstyle("format", statement, args) == driver._convert_paramstyle(
            "format", statement, args
        )
        assert driver._cached_convert_paramstyle("format", statement, args)[1] is args
    named = "SELECT :a, :b, :a"
    assert driver._cached_convert_paramstyle("named", named, {"a": 1, "b": 2}) == ("SELECT $1, $2, $1", (1, 2))


def test_an_engine_makes_pg8000_use_the_remembered_rewrite(db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        assert pg8000.legacy.convert_paramstyle is driver._cached_convert_paramstyle
        assert pg8000.dbapi.convert_paramstyle is driver._cached_convert_paramstyle
        with engine.connect() as conn:
            before = driver._format_to_numbered.cache_info().hits
            for _ in range(3):
                assert conn.exec_driver_sql("SELECT %s::int + 1", (41,)).scalar_one() == 42
            assert driver._format_to_numbered.cache_info().hits >= before + 2
    finally:
        engine.dispose()
