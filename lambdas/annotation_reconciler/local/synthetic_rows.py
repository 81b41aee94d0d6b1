"""The synthetic portal's database rows (deposition to method links).

They are bulk-loaded with COPY, as the portal's importer would have written them::

    ids = write_rows(engine, build_portal(PortalSpec()))    # annotation metadata key -> annotation id
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, text

from annotation_reconciler.local.synthetic import DATASET_DESCRIPTION, DATE, PortalSpec, SyntheticPortal

DATASET_COLUMNS = (
    "id",
    "deposition_id",
    "title",
    "description",
    "s3_prefix",
    "https_prefix",
    "deposition_date",
    "release_date",
    "last_modified_date",
)


def _copy(raw: Any, table: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow(["\\N" if v is None else v for v in row])
    buf.seek(0)
    cursor = raw.cursor()
    cols = ", ".join(columns)
    cursor.execute(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", stream=buf)
    cursor.close()


def _next_id(raw: Any, table: str) -> int:
    cursor = raw.cursor()
    cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")  # noqa: S608 - fixed table names
    (value,) = cursor.fetchone()
    cursor.close()
    return int(value)


_DEPOSITION = text(
    "INSERT INTO deposition (id, title, description, deposition_date, release_date, last_modified_date) "
    "VALUES (:id, :title, :description, :d, :d, :d) ON CONFLICT (id) DO NOTHING"
)


def deposition_fields(spec: PortalSpec) -> dict[str, str]:
    """The synthetic deposition's title and description (with its dates, every NOT NULL column it has)."""
    return {"title": "Synthetic deposition", "description": f"Deposition {spec.deposition_id} of the synthetic portal"}


def write_deposition(engine: Engine, spec: PortalSpec) -> None:
    """The synthetic portal's deposition row, as the portal's deposition import writes it before any dataset of it
    is ingested (``annotation-reconciler ingest`` refuses rows whose deposition the database lacks)."""
    with engine.begin() as conn:
        conn.execute(_DEPOSITION, {"id": spec.deposition_id, "d": DATE, **deposition_fields(spec)})


def write_rows(engine: Engine, portal: SyntheticPortal) -> dict[str, int]:
    """Insert the portal's rows (deposition to method links) in bulk; returns metadata key -> annotation id."""
    spec = portal.spec
    https = spec.https_prefix.rstrip("/")
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        conn.execute(_DEPOSITION, {"id": spec.deposition_id, "d": DATE, **deposition_fields(spec)})
        _copy(
            raw,
            "dataset",
            DATASET_COLUMNS,
            (
                (
                    d,
                    spec.deposition_id,
                    f"Synthetic dataset {d}",
                    DATASET_DESCRIPTION,
                    portal.stored_path(f"{d}/", 0),
                    f"{https}/{d}/",
                    DATE,
                    DATE,
                    DATE,
                )
                for d in portal.dataset_ids
            ),
        )
        run_id = _next_id(raw, "run")
        vs_id = _next_id(raw, "tomogram_voxel_spacing")
        run_rows, vs_rows, vs_ids = [], [], {}
        for run in portal.runs:
            prefix = f"{run.dataset_id}/{run.name}/"
            run_rows.append((run_id, run.dataset_id, run.name, portal.stored_path(prefix, 0), f"{https}/{prefix}"))
            for spacing in run.voxel_spacings:
                vs_prefix = f"{prefix}Reconstructions/VoxelSpacing{spacing:.3f}/"
                vs_rows.append((vs_id, run_id, spacing, portal.stored_path(vs_prefix, 0), f"{https}/{vs_prefix}"))
                vs_ids[vs_prefix] = (vs_id, run_id)
                vs_id += 1
            run_id += 1
        _copy(raw, "run", ("id", "dataset_id", "name", "s3_prefix", "https_prefix"), run_rows)
        _copy(
            raw,
            "tomogram_voxel_spacing",
            ("id", "run_id", "voxel_spacing", "s3_prefix", "https_prefix"),
            vs_rows,
        )

        ann_id = _next_id(raw, "annotation")
        shape_id = _next_id(raw, "annotation_shape")
        ann_rows: list[tuple[Any, ...]] = []
        shape_rows: list[tuple[Any, ...]] = []
        file_rows: list[tuple[Any, ...]] = []
        author_rows: list[tuple[Any, ...]] = []
        link_rows: list[tuple[Any, ...]] = []
        for i, ann in enumerate(portal.annotations):
            vs, run_id = vs_ids[ann.voxel_spacing_prefix]
            legacy = spec.legacy_every and i % spec.legacy_every == spec.legacy_every - 1
            ids[ann.metadata_key] = ann_id
            ann_rows.append(
                (
                    ann_id,
                    run_id,
                    spec.deposition_id,
                    None if legacy else vs,
                    portal.stored_path(ann.metadata_key, i),
                    f"{https}/{ann.metadata_key}",
                    ann.ingest_id,
                    "template matching",
                    "hybrid",
                    f"GO:{ann.number:07d}",
                    ann.object_name,
                    ann.number % 17,
                    0.9,
                    0.8,
                    "pyTOM",
                    True,
                    False,
                    DATE,
                    DATE,
                    DATE,
                )
            )
            shapes: dict[str, int] = {}
            for data_file in ann.files:
                if data_file.shape not in shapes:
                    shapes[data_file.shape] = shape_id
                    shape_rows.append((shape_id, ann_id, data_file.shape))
                    shape_id += 1
                file_rows.append(
                    (
                        shapes[data_file.shape],
                        vs,
                        data_file.format,
                        portal.stored_path(data_file.key, i),
                        f"{https}/{data_file.key}",
                        data_file.is_visualization_default,
                        "dataset_author",
                    )
                )
            author_rows.append((ann_id, 1, "Ada Author", "0000-0002-1825-0097", True, False))
            author_rows.append((ann_id, 2, "Bo Builder", None, False, True))
            link_rows.append((ann_id, "source_code", "picker", "https://github.com/example/picker"))
            ann_id += 1
        _copy(
            raw,
            "annotation",
            (
                "id",
                "run_id",
                "deposition_id",
                "tomogram_voxel_spacing_id",
                "s3_metadata_path",
                "https_metadata_path",
                "annotation_ingest_id",
                "annotation_method",
                "method_type",
                "object_id",
                "object_name",
                "object_count",
                "confidence_precision",
                "confidence_recall",
                "annotation_software",
                "is_curator_recommended",
                "ground_truth_status",
                "deposition_date",
                "release_date",
                "last_modified_date",
            ),
            ann_rows,
        )
        _copy(raw, "annotation_shape", ("id", "annotation_id", "shape_type"), shape_rows)
        _copy(
            raw,
            "annotation_file",
            (
                "annotation_shape_id",
                "tomogram_voxel_spacing_id",
                "format",
                "s3_path",
                "https_path",
                "is_visualization_default",
                "source",
            ),
            file_rows,
        )
        _copy(
            raw,
            "annotation_author",
            (
                "annotation_id",
                "author_list_order",
                "name",
                "orcid",
                "primary_author_status",
                "corresponding_author_status",
            ),
            author_rows,
        )
        _copy(raw, "annotation_method_link", ("annotation_id", "link_type", "name", "link"), link_rows)
        for table in ("dataset", "run", "tomogram_voxel_spacing", "annotation", "annotation_shape"):
            sql = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"  # noqa: S608
            conn.execute(text(sql))
    return ids
