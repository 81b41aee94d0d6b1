"""Reads of the portal's annotation rows and data files that the reconciler judges: one statement each.

Functions take a Connection in the caller's transaction; none of them commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from annotation_reconciler.db import int_array, text_array
from annotation_reconciler.rules.lifecycle import AnnotationRef
from annotation_reconciler.rules.scope import Scope


@dataclass(frozen=True, slots=True)
class FileRow:
    file_id: int
    annotation_id: int | None
    s3_path: str
    reported: bool = False  # it has an open missing-file report


_REF_COLUMNS = "a.id, a.s3_metadata_path, r.dataset_id, a.run_id"


def _refs(rows: Iterable[object]) -> list[AnnotationRef]:
    return [AnnotationRef(r.id, r.s3_metadata_path, r.dataset_id, r.run_id) for r in rows]  # type: ignore[attr-defined]


def annotations_by_paths(conn: Connection, stored_paths: Sequence[str]) -> list[AnnotationRef]:
    """Annotations whose s3_metadata_path is any of ``stored_paths`` (one indexed IN query)."""
    if not stored_paths:
        return []
    rows = conn.execute(
        text(
            f"SELECT {_REF_COLUMNS} FROM annotation a LEFT JOIN run r ON r.id = a.run_id "  # noqa: S608
            "WHERE a.s3_metadata_path = ANY(CAST(:paths AS text[]))"
        ),
        {"paths": text_array(stored_paths)},
    )
    return _refs(rows)


def annotations_in_scope(conn: Connection, scope: Scope) -> list[AnnotationRef]:
    """All annotations of a scope in one query. A voxel spacing also covers its legacy rows
    (NULL tomogram_voxel_spacing_id) whose files reference it."""
    rows = conn.execute(
        text(f"""
        SELECT {_REF_COLUMNS} FROM annotation a LEFT JOIN run r ON r.id = a.run_id
        WHERE (CAST(:dataset_id AS integer) IS NULL OR r.dataset_id = :dataset_id)
          AND (CAST(:run_ids AS integer[]) IS NULL OR a.run_id = ANY(CAST(:run_ids AS integer[])))
          AND (CAST(:vs AS integer) IS NULL OR a.tomogram_voxel_spacing_id = :vs
               OR (a.tomogram_voxel_spacing_id IS NULL AND EXISTS (
                   SELECT 1 FROM annotation_shape s JOIN annotation_file f ON f.annotation_shape_id = s.id
                   WHERE s.annotation_id = a.id AND f.tomogram_voxel_spacing_id = :vs)))
        ORDER BY a.id"""),  # noqa: S608
        {
            "dataset_id": scope.dataset_id,
            "run_ids": list(scope.run_ids) if scope.run_ids is not None else None,
            "vs": scope.voxel_spacing_id,
        },
    )
    return _refs(rows)


def annotations_by_ids(conn: Connection, annotation_ids: Sequence[int]) -> dict[int, AnnotationRef]:
    """The current rows of these annotations (absent ones are missing from the answer)."""
    if not annotation_ids:
        return {}
    rows = conn.execute(
        text(
            f"SELECT {_REF_COLUMNS} FROM annotation a LEFT JOIN run r ON r.id = a.run_id "  # noqa: S608
            "WHERE a.id = ANY(CAST(:ids AS integer[]))"
        ),
        {"ids": int_array(annotation_ids)},
    )
    return {ref.id: ref for ref in _refs(rows)}


def natural_keys(conn: Connection, annotation_ids: Sequence[int]) -> dict[int, tuple[int, str] | None]:
    """annotation id -> its natural key without the run, (deposition_id, annotation_ingest_id), as the importer
    upserts on it (None when the row lacks a deposition)."""
    if not annotation_ids:
        return {}
    rows = conn.execute(
        text("SELECT id, deposition_id, annotation_ingest_id FROM annotation WHERE id = ANY(CAST(:ids AS integer[]))"),
        {"ids": list(annotation_ids)},
    ).all()
    return {r[0]: (r[1], r[2]) if r[1] is not None and r[2] else None for r in rows}


def files_of(conn: Connection, annotation_ids: Sequence[int]) -> list[FileRow]:
    """The data files of these annotations, each with whether it has an open missing-file report (one query)."""
    if not annotation_ids:
        return []
    rows = conn.execute(
        text("""SELECT f.id, s.annotation_id, f.s3_path,
                       EXISTS (SELECT 1 FROM annotation_reconciler.missing_annotation_file m
                               WHERE m.resolved_at IS NULL AND m.annotation_file_id = f.id) AS reported
                FROM annotation_file f
                JOIN annotation_shape s ON s.id = f.annotation_shape_id
                WHERE s.annotation_id = ANY(CAST(:ids AS integer[])) ORDER BY f.id"""),
        {"ids": int_array(annotation_ids)},
    ).all()
    return [FileRow(r[0], r[1], r[2], bool(r[3])) for r in rows]


def annotations_per_run(conn: Connection) -> list[tuple[int, int, int]]:
    """(dataset id, run id, annotations) of every run that has annotations, in dataset and run order."""
    rows = conn.execute(
        text("""SELECT r.dataset_id, a.run_id, count(*) FROM annotation a JOIN run r ON r.id = a.run_id
                GROUP BY r.dataset_id, a.run_id ORDER BY r.dataset_id, a.run_id""")
    ).all()
    return [(int(d), int(r), int(n)) for d, r, n in rows]
