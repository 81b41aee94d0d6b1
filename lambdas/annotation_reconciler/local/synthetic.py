"""A synthetic CryoET Data Portal: a realistic bucket and, optionally, its database rows.

The layout follows the portal's (see ``shared/spec/portal-facts.md``)::

    {dataset}/dataset_metadata.json
    {dataset}/{run}/run_metadata.json
    {dataset}/{run}/Reconstructions/VoxelSpacing{spacing:.3f}/Annotations/{NNN}/{object}-{version}.json
    {dataset}/{run}/Reconstructions/VoxelSpacing{spacing:.3f}/Annotations/{NNN}/{NNN}-{object}-{version}_{shape}.{ext}

Build it once (pure, deterministic), then write it where it is needed::

    portal = build_portal(PortalSpec(datasets=2, runs_per_dataset=3))
    write_bucket(s3_client, portal)
    ids = write_rows(engine, portal)    # annotation metadata key -> annotation id
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PathStyle = Literal["s3", "relative", "bucket", "mixed"]
OBJECTS = (
    "ribosome",
    "membrane",
    "actin",
    "microtubule",
    "mitochondrion",
    "vesicle",
    "nucleosome",
    "proteasome",
)
ODD_RUN_NAMES = ("TS 1+2 é", "TS_ü+plus")
DATE = datetime(2024, 1, 15, tzinfo=UTC)
DATASET_DESCRIPTION = "Made by annotation_reconciler.local.synthetic"
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


@dataclass(frozen=True)
class PortalSpec:
    """The shape of a synthetic portal."""

    bucket: str = "cryoet-data-portal-public"
    datasets: int = 2
    runs_per_dataset: int = 3
    voxel_spacings_per_run: int = 1
    annotations_per_voxel_spacing: int = 3
    zarr_chunks_per_annotation: int = 2
    first_dataset_id: int = 10001
    deposition_id: int = 301
    path_style: PathStyle = "s3"
    odd_run_names: bool = False
    legacy_every: int = 0  # every Nth annotation row has tomogram_voxel_spacing_id NULL (0: none)
    https_prefix: str = "https://files.cryoetdataportal.cziscience.com"

    @property
    def annotations(self) -> int:
        return self.datasets * self.runs_per_dataset * self.voxel_spacings_per_run * self.annotations_per_voxel_spacing


@dataclass(frozen=True)
class DataFile:
    key: str
    format: str
    shape: str
    is_visualization_default: bool
    is_prefix: bool = False  # zarr: a prefix holding many objects


@dataclass(frozen=True)
class SyntheticAnnotation:
    dataset_id: int
    run_name: str
    voxel_spacing: float
    number: int
    object_name: str
    version: str
    metadata_key: str
    files: tuple[DataFile, ...]
    noise_keys: tuple[str, ...]  # zarr chunks and caption decoys: data-file objects, not rows

    @property
    def ingest_id(self) -> str:
        return f"{self.number}-{self.object_name}-{self.version}"

    @property
    def voxel_spacing_prefix(self) -> str:
        return f"{self.dataset_id}/{self.run_name}/Reconstructions/VoxelSpacing{self.voxel_spacing:.3f}/"


@dataclass(frozen=True)
class SyntheticRun:
    dataset_id: int
    name: str
    voxel_spacings: tuple[float, ...]


@dataclass
class SyntheticPortal:
    spec: PortalSpec
    dataset_ids: list[int] = field(default_factory=list)
    runs: list[SyntheticRun] = field(default_factory=list)
    annotations: list[SyntheticAnnotation] = field(default_factory=list)

    @property
    def metadata_keys(self) -> list[str]:
        return [a.metadata_key for a in self.annotations]

    def all_keys(self) -> Iterator[str]:
        """Every object key the bucket holds, metadata and data files alike."""
        for dataset_id in self.dataset_ids:
            yield f"{dataset_id}/dataset_metadata.json"
        for run in self.runs:
            yield f"{run.dataset_id}/{run.name}/run_metadata.json"
        for ann in self.annotations:
            yield ann.metadata_key
            for data_file in ann.files:
                if not data_file.is_prefix:
                    yield data_file.key
            yield from ann.noise_keys

    def stored_path(self, key: str, index: int) -> str:
        style = self.spec.path_style
        if style == "mixed":
            style = ("s3", "relative", "bucket")[index % 3]
        if style == "relative":
            return key
        if style == "bucket":
            return f"{self.spec.bucket}/{key}"
        return f"s3://{self.spec.bucket}/{key}"


def build_portal(spec: PortalSpec) -> SyntheticPortal:
    """Lay out a portal of ``spec``'s size (no I/O)."""
    portal = SyntheticPortal(spec=spec)
    for d in range(spec.datasets):
        dataset_id = spec.first_dataset_id + d
        portal.dataset_ids.append(dataset_id)
        for r in range(spec.runs_per_dataset):
            odd = spec.odd_run_names and r < len(ODD_RUN_NAMES)
            run_name = ODD_RUN_NAMES[r] if odd else f"TS_{r:03d}"
            spacings = tuple(round(13.48 + 2.5 * v, 3) for v in range(spec.voxel_spacings_per_run))
            portal.runs.append(SyntheticRun(dataset_id, run_name, spacings))
            for spacing in spacings:
                for n in range(spec.annotations_per_voxel_spacing):
                    portal.annotations.append(_annotation(spec, dataset_id, run_name, spacing, n))
    return portal


def _annotation(spec: PortalSpec, dataset_id: int, run_name: str, spacing: float, n: int) -> SyntheticAnnotation:
    number = 100 + n
    name = OBJECTS[n % len(OBJECTS)] + ("" if n < len(OBJECTS) else f"-{n // len(OBJECTS)}")
    version = "1.0"
    folder = f"{dataset_id}/{run_name}/Reconstructions/VoxelSpacing{spacing:.3f}/Annotations/{number}/"
    stem = f"{folder}{number}-{name}-{version}"
    files = (
        DataFile(f"{stem}_point.ndjson", "ndjson", "Point", True),
        DataFile(f"{stem}_segmentationmask.mrc", "mrc", "SegmentationMask", False),
        DataFile(f"{stem}_segmentationmask.zarr", "zarr", "SegmentationMask", False, is_prefix=True),
    )
    noise = [f"{stem}_segmentationmask.zarr/.zattrs", f"{stem}_globalcaption.json"]
    noise += [f"{stem}_segmentationmask.zarr/0/{i}.0.0" for i in range(spec.zarr_chunks_per_annotation)]
    return SyntheticAnnotation(
        dataset_id,
        run_name,
        spacing,
        number,
        name,
        version,
        f"{folder}{name}-{version}.json",
        files,
        tuple(noise),
    )


def metadata_document(portal: SyntheticPortal, ann: SyntheticAnnotation) -> dict[str, Any]:
    """The annotation metadata JSON, as the portal's ingestion writes it."""
    date = DATE.date().isoformat()
    return {
        "annotation_ingest_id": ann.ingest_id,
        "annotation_object": {
            "id": f"GO:{ann.number:07d}",
            "name": ann.object_name,
            "description": None,
            "state": None,
        },
        "dates": {"deposition_date": date, "release_date": date, "last_modified_date": date},
        "annotation_method": "template matching",
        "method_type": "hybrid",
        "annotation_publications": "EMPIAR-10499",
        "ground_truth_status": False,
        "annotation_software": "pyTOM",
        "is_curator_recommended": True,
        "object_count": ann.number % 17,
        "deposition_id": portal.spec.deposition_id,
        "version": ann.version,
        "confidence": {"precision": 0.9, "recall": 0.8, "ground_truth_used": None},
        "authors": [
            {
                "name": "Ada Author",
                "ORCID": "0000-0002-1825-0097",
                "primary_author_status": True,
                "corresponding_author_status": False,
            },
            {"name": "Bo Builder", "email": "bo@example.org", "corresponding_author_status": True},
        ],
        "files": [
            {
                "format": f.format,
                "path": f.key,
                "shape": f.shape,
                "is_visualization_default": f.is_visualization_default,
            }
            for f in ann.files
        ],
        "method_links": [
            {"link": "https://github.com/example/picker", "link_type": "source_code", "custom_name": "picker"}
        ],
        "last_updated_at": 1728675800,
    }


def documents(portal: SyntheticPortal) -> Iterator[tuple[str, bytes]]:
    """Every object (key, body) of the bucket."""
    spec = portal.spec
    for dataset_id in portal.dataset_ids:
        body = {
            "dataset_identifier": dataset_id,
            "dataset_title": f"Synthetic dataset {dataset_id}",
            "dataset_description": DATASET_DESCRIPTION,
            "dates": {
                "deposition_date": "2024-01-15",
                "release_date": "2024-01-15",
                "last_modified_date": "2024-01-15",
            },
            "deposition_id": spec.deposition_id,
            "authors": [{"name": "Ada Author"}],
            "organism": {"name": "Escherichia coli", "taxonomy_id": 562},
        }
        yield f"{dataset_id}/dataset_metadata.json", json.dumps(body).encode()
    for run in portal.runs:
        body = {"run_name": run.name, "deposition_id": spec.deposition_id}
        yield f"{run.dataset_id}/{run.name}/run_metadata.json", json.dumps(body).encode()
    for ann in portal.annotations:
        yield ann.metadata_key, json.dumps(metadata_document(portal, ann)).encode()
        for data_file in ann.files:
            if not data_file.is_prefix:
                yield data_file.key, b"x"
        for key in ann.noise_keys:
            yield key, b"{}" if key.endswith(".json") else b"\0"


def write_bucket(s3: S3Client, portal: SyntheticPortal, *, create: bool = True, threads: int = 8) -> int:
    """Upload every object of the portal; returns the number of objects written."""
    bucket = portal.spec.bucket
    if create:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})

    def put(item: tuple[str, bytes]) -> None:
        s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    count = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(put, documents(portal)):
            count += 1
    return count


# --- database rows, bulk-loaded with COPY as the portal's importer would have written them ---


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
            author_rows.append((ann_id, 0, "Ada Author", "0000-0002-1825-0097", True, False))
            author_rows.append((ann_id, 1, "Bo Builder", None, False, True))
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
