"""Reports of annotation data files whose objects were removed from S3 (reported, never deleted for).

Functions take a Connection in the caller's transaction; none of them commits.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from sqlalchemy import Connection, text

from annotation_reconciler.db import int_array, text_array

_INSERT = """INSERT INTO annotation_reconciler.missing_annotation_file
                  (annotation_file_id, annotation_id, s3_path, removed_key, removed_keys, detected_at)"""
# a file's open report gains the removed keys it lacks; RETURNING says whether the report is new
_MERGE = """ON CONFLICT (annotation_file_id) WHERE resolved_at IS NULL DO UPDATE
                  SET removed_keys = ARRAY(SELECT DISTINCT k FROM unnest(missing_annotation_file.removed_keys
                                                                         || EXCLUDED.removed_keys) AS k ORDER BY k)
                  WHERE NOT EXCLUDED.removed_keys <@ missing_annotation_file.removed_keys
                RETURNING xmax = 0 AS opened"""

#: Open or extend the reports of (file id, annotation id, s3_path, removed key) (:func:`record_missing_files`).
RECORD_SQL = f"""{_INSERT}
                SELECT fid, aid, path, min(key), array_agg(DISTINCT key ORDER BY key), :now
                FROM unnest(CAST(:fids AS integer[]), CAST(:aids AS integer[]),
                            CAST(:paths AS text[]), CAST(:keys AS text[])) AS f(fid, aid, path, key)
                -- the file row as it was read: not one deleted or given another path since
                WHERE EXISTS (SELECT 1 FROM annotation_file af WHERE af.id = f.fid AND af.s3_path = f.path)
                GROUP BY fid, aid, path
                {_MERGE}"""  # noqa: S608 (constants of this module)

#: The same for the data files whose s3_path is a stored form of a removed key: (stored form, removed key) as
#: ``:m_forms``, ``:m_keys`` (the events path maps and records in one statement, ``ledger/event_batch.py``).
RECORD_BY_PATHS_SQL = f"""{_INSERT}
                SELECT f.id, s.annotation_id, f.s3_path, min(m.key), array_agg(DISTINCT m.key ORDER BY m.key), :now
                FROM annotation_file f
                JOIN unnest(CAST(:m_forms AS text[]), CAST(:m_keys AS text[])) AS m(form, key) ON m.form = f.s3_path
                LEFT JOIN annotation_shape s ON s.id = f.annotation_shape_id
                -- no scan at all without removed files; then only the named files, not a hash of every file row
                WHERE cardinality(CAST(:m_forms AS text[])) > 0 AND f.s3_path = ANY(CAST(:m_forms AS text[]))
                GROUP BY f.id, s.annotation_id, f.s3_path
                {_MERGE}"""  # noqa: S608 (constants of this module)

#: Take keys that are back off the open reports (:func:`resolve_missing_keys`): ``:keys``, ``:now``.
RESOLVE_SQL = """UPDATE annotation_reconciler.missing_annotation_file m
                SET removed_keys = ARRAY(SELECT k FROM unnest(m.removed_keys) AS k
                                         WHERE k <> ALL(CAST(:keys AS text[])) ORDER BY k),
                    resolved_at = CASE WHEN m.removed_keys <@ CAST(:keys AS text[]) THEN CAST(:now AS timestamptz) END
                FROM (SELECT DISTINCT r.id
                      FROM unnest(CAST(:keys AS text[])) AS back(key)
                      CROSS JOIN LATERAL (SELECT x.id FROM annotation_reconciler.missing_annotation_file x
                                          WHERE x.resolved_at IS NULL AND x.removed_keys @> ARRAY[back.key]) AS r
                     ) AS hit
                WHERE m.id = hit.id AND m.resolved_at IS NULL
                RETURNING m.resolved_at IS NOT NULL AS closed"""


def resolve_params(keys: Sequence[str], *, now: datetime.datetime) -> dict[str, object]:
    """The parameters of :data:`RESOLVE_SQL`."""
    return {"keys": text_array(sorted(set(keys))), "now": now}


def record_missing_files(
    conn: Connection, files: Sequence[tuple[int, int | None, str, str]], *, now: datetime.datetime
) -> int:
    """Open a missing-file report per (file id, annotation id, s3_path, removed key), or add the removed key to
    the file's open report (another chunk of one zarr); idempotent. Returns how many reports were opened."""
    if not files:
        return 0
    rows = conn.execute(
        text(RECORD_SQL),
        {
            "fids": int_array(f[0] for f in files),
            "aids": int_array(f[1] for f in files),
            "paths": text_array(f[2] for f in files),
            "keys": text_array(f[3] for f in files),
            "now": now,
        },
    ).scalars()
    return sum(1 for opened in rows if opened)


def resolve_missing_keys(conn: Connection, keys: Sequence[str], *, now: datetime.datetime) -> int:
    """These removed keys are back: take them off the open reports, and close each report none of whose
    removed keys is still missing. Returns how many reports closed.

    The open reports are found key by key (``removed_keys @> ARRAY[key]``, through the GIN index): asked as one
    ``removed_keys && :keys``, PostgreSQL's estimate grows with the array's length and, past a few dozen keys,
    it scans every open report instead (10 s for 500 keys at 500,000 open reports)."""
    if not keys:
        return 0
    rows = conn.execute(text(RESOLVE_SQL), resolve_params(keys, now=now)).scalars()
    return sum(1 for closed in rows if closed)


def close_for_annotations(conn: Connection, annotation_ids: Sequence[int], *, now: datetime.datetime) -> int:
    """The annotations are deleted: their open missing-file reports have nothing left to report. Returns how
    many closed."""
    if not annotation_ids:
        return 0
    return conn.execute(
        text("""UPDATE annotation_reconciler.missing_annotation_file SET resolved_at = :now
                WHERE resolved_at IS NULL AND annotation_id = ANY(CAST(:ids AS integer[]))"""),
        {"ids": int_array(annotation_ids), "now": now},
    ).rowcount
