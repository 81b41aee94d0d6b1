"""Schema fidelity: the DDL the tests, the demo and the benchmarks load (local/portal_schema.sql) against the facts
read from the portal's own models and migrations (tests/data/portal_schema_facts.json, which names the commit), and
our SQLAlchemy models of those tables against the same facts.

The DDL is loaded into an empty database on the real PostgreSQL and read back from information_schema and
pg_catalog, so what is compared is what the server made of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Boolean, DateTime, Engine, Float, Integer, String, text

from annotation_reconciler.db import make_engine
from annotation_reconciler.local.databases import DatabaseFactory, create_portal_schema
from annotation_reconciler.portal import models as m
from annotation_reconciler.portal.models import PORTAL_TABLES

FACTS = json.loads((Path(__file__).parents[1] / "data" / "portal_schema_facts.json").read_text())


@pytest.fixture(scope="module")
def ddl_engine(db_factory: DatabaseFactory, worker_id: str) -> Iterator[Engine]:
    """An empty database holding the portal DDL and nothing else (no reconciler migration, no rows)."""
    name = f"schema_{worker_id}"
    engine = make_engine(db_factory.empty(name))
    create_portal_schema(engine)
    yield engine
    engine.dispose()
    db_factory.drop(name)


def test_the_facts_cover_the_nine_tables_the_reconciler_touches() -> None:
    assert FACTS["source"]["commit"].startswith("87d1ca4a")
    assert set(FACTS["columns"]) == set(PORTAL_TABLES) and len(PORTAL_TABLES) == 9
    # the facts the issue names, spot-checked so a wrong facts file cannot pass silently
    required = {(t, c["column"]) for t, cols in FACTS["columns"].items() for c in cols if not c["nullable"]}
    assert {("deposition", "description"), ("deposition", "release_date")} <= required
    assert ("annotation_method_link", "link_type") in required and ("annotation", "run_id") not in required


def ddl_columns(engine: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, column_name, data_type, is_nullable, column_default, character_maximum_length "
                "FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = ANY(CAST(:tables AS text[]))"
            ),
            {"tables": list(PORTAL_TABLES)},
        ).all()
    found = {}
    for r in rows:
        default = r.column_default
        if default is not None and default.startswith("nextval("):
            assert default == f"nextval('{r.table_name}_{r.column_name}_seq'::regclass)"
            default = "nextval"
        found[(r.table_name, r.column_name)] = {
            "type": r.data_type,
            "nullable": r.is_nullable == "YES",
            "default": default,
            "max_length": r.character_maximum_length,
        }
    return found


def test_the_ddl_matches_the_facts_column_by_column(ddl_engine: Engine) -> None:
    found = ddl_columns(ddl_engine)
    expected = {
        (table, c["column"]): {k: c[k] for k in ("type", "nullable", "default", "max_length")}
        for table, columns in FACTS["columns"].items()
        for c in columns
    }
    assert sorted(set(found) - set(expected)) == [], "columns in the DDL the portal does not have"
    assert sorted(set(expected) - set(found)) == [], "columns of the portal missing from the DDL"
    differences = {key: (found[key], want) for key, want in expected.items() if found[key] != want}
    assert differences == {}


def test_the_ddl_has_the_portals_foreign_keys_without_cascade(ddl_engine: Engine) -> None:
    with ddl_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.conname, t.relname AS tbl, a.attname AS col, r.relname AS ref, ra.attname AS ref_col, "
                "c.confdeltype, c.confupdtype "
                "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                "JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1] "
                "WHERE c.contype = 'f' AND t.relname = ANY(CAST(:tables AS text[])) AND cardinality(c.conkey) = 1"
            ),
            {"tables": list(PORTAL_TABLES)},
        ).all()
        multi = conn.execute(text("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND cardinality(conkey) > 1"))
        assert multi.scalar_one() == 0
    found = {(r.tbl, r.col): (r.conname, f"{r.ref}.{r.ref_col}") for r in rows}
    assert {(r.confdeltype, r.confupdtype) for r in rows} == {("a", "a")}  # NO ACTION: no cascade, no SET NULL
    expected = {(fk["table"], fk["column"]): (fk["name"], fk["references"]) for fk in FACTS["foreign_keys"]}
    assert all(fk["on_delete"] == "NO ACTION" for fk in FACTS["foreign_keys"])
    assert found == expected


def test_the_ddl_has_the_portals_indexes_and_no_other_constraint(ddl_engine: Engine) -> None:
    with ddl_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.relname AS tbl, ic.relname AS name, i.indisunique, i.indisprimary, "
                "ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n) "
                "      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n) AS cols "
                "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid "
                "WHERE t.relname = ANY(CAST(:tables AS text[]))"
            ),
            {"tables": list(PORTAL_TABLES)},
        ).all()
        checks = conn.execute(
            text(
                "SELECT conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
                "WHERE c.contype IN ('c', 'u', 'x') AND t.relname = ANY(CAST(:tables AS text[]))"
            ),
            {"tables": list(PORTAL_TABLES)},
        ).all()
    found = {(r.tbl, r.name): (list(r.cols), r.indisunique, r.indisprimary) for r in rows}
    expected = {(i["table"], i["name"]): (i["columns"], i["unique"], i["primary"]) for i in FACTS["indexes"]}
    assert found == expected
    assert checks == []  # enums stored as strings carry no CHECK; the portal has no unique natural keys


_MODEL_TYPES = {
    "character varying": String,
    "integer": Integer,
    "double precision": Float,
    "timestamp with time zone": DateTime,
    "boolean": Boolean,
}


def test_our_models_agree_with_the_facts() -> None:
    """Every mapped column has the portal's type, length and NOT NULL; every foreign key points where the portal's
    does; every NOT NULL column of the portal that a writer must fill is mapped."""
    facts = {(t, c["column"]): c for t, cols in FACTS["columns"].items() for c in cols}
    fks = {(fk["table"], fk["column"]): fk["references"] for fk in FACTS["foreign_keys"]}
    for name in PORTAL_TABLES:
        table = m.PortalBase.metadata.tables[name]
        for column in table.columns:
            fact = facts.get((name, column.name))
            assert fact is not None, f"{name}.{column.name} is not a portal column"
            kind = _MODEL_TYPES[fact["type"]]
            assert isinstance(column.type, kind), f"{name}.{column.name}: {column.type!r} is not {kind.__name__}"
            if kind is String:
                assert column.type.length == fact["max_length"], f"{name}.{column.name} length"
            if kind is Integer:  # not BigInteger or SmallInteger: the portal's keys are 4-byte integers
                assert type(column.type) is Integer, f"{name}.{column.name}: {column.type!r}"
            if kind is DateTime:
                assert column.type.timezone, f"{name}.{column.name} is timestamp with time zone"
            assert column.nullable == fact["nullable"], f"{name}.{column.name} nullable"
            targets = {fk.target_fullname for fk in column.foreign_keys}
            assert targets == ({fks[(name, column.name)]} if (name, column.name) in fks else set()), column
        required = {c for (t, c), fact in facts.items() if t == name and not fact["nullable"] and not fact["default"]}
        # a row written through the models must be able to name every column the portal requires
        assert required <= set(table.columns.keys()), f"{name}: NOT NULL columns not mapped"
