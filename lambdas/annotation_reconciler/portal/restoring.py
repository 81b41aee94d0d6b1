"""Writes that put purged portal rows back (``annotation-reconciler restore``), and the reads that check first.

Table names come only from :data:`TABLES`; every value is bound.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text

#: Parents first: the portal's foreign keys point from children to parents.
TABLES = ("annotation", "annotation_shape", "annotation_file", "annotation_author", "annotation_method_link")


def taken_ids(conn: Connection, table: str, ids: Sequence[int]) -> list[int]:
    """The ids of ``table`` (one of :data:`TABLES`) that exist now."""
    assert table in TABLES
    if not ids:
        return []
    return list(
        conn.execute(
            text(f"SELECT id FROM public.{table} WHERE id = ANY(CAST(:ids AS integer[])) ORDER BY id"),  # noqa: S608
            {"ids": list(ids)},
        ).scalars()
    )


def natural_key_clashes(conn: Connection, annotations: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """(id of an annotation now, id to restore) for each annotation row to restore whose natural key (run,
    deposition, annotation_ingest_id) an annotation has now."""
    if not annotations:
        return []
    rows = conn.execute(
        text("""SELECT a.id, k.want FROM public.annotation a
                JOIN unnest(CAST(:runs AS integer[]), CAST(:deps AS integer[]), CAST(:ingest AS text[]),
                            CAST(:want AS integer[])) AS k(run_id, deposition_id, ingest_id, want)
                  ON a.run_id IS NOT DISTINCT FROM k.run_id AND a.deposition_id IS NOT DISTINCT FROM k.deposition_id
                 AND a.annotation_ingest_id = k.ingest_id
                ORDER BY k.want"""),
        {
            "runs": [a.get("run_id") for a in annotations],
            "deps": [a.get("deposition_id") for a in annotations],
            "ingest": [a.get("annotation_ingest_id") for a in annotations],
            "want": [int(a["id"]) for a in annotations],
        },
    ).all()
    return [(int(have), int(want)) for have, want in rows]


def insert_rows(conn: Connection, table: str, rows: list[dict[str, Any]]) -> int:
    """Insert the rows (as the audit recorded them) into ``table``, one of :data:`TABLES`, and move its id sequence
    past them; returns how many."""
    assert table in TABLES
    if not rows:
        return 0
    conn.execute(
        text(
            f"INSERT INTO public.{table} SELECT * "  # noqa: S608 (a table name of TABLES)
            f"FROM jsonb_populate_recordset(NULL::public.{table}, CAST(:rows AS jsonb))"
        ),
        {"rows": json.dumps(rows)},
    )
    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": f"public.{table}"}).scalar()
    if seq:  # explicit ids must not collide with later inserts: the sequence never moves back
        conn.execute(
            text(
                f"SELECT setval(:seq, GREATEST(m, (SELECT last_value FROM {seq}))) "  # noqa: S608
                f"FROM (SELECT max(id) AS m FROM public.{table}) x WHERE m IS NOT NULL"
            ),
            {"seq": seq},
        )
    return len(rows)
