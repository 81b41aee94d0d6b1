"""A synthetic CryoET Data Portal: a realistic bucket and, optionally, its database rows.

The layout follows the portal's (see ``shared/spec/portal-facts.md``)::

    {dataset}/dataset_metadata.json
    {dataset}/{run}/run_metadata.json
    {dataset}/{run}/Reconstructions/VoxelSpacing{spacing:.3f}/Annotations/{NNN}/{object}-{version}.json
    {dataset}/{run}/Reconstructions/VoxelSpacing{spacing:.3f}/Annotations/{NNN}/{NNN}-{object}-{version}_{shape}.{ext}

Build it once (pure, deterministic), then write it where it is needed (``synthetic_bucket`` writes its
objects to S3, ``synthetic_rows`` its rows to PostgreSQL)::

    portal = build_portal(PortalSpec(datasets=2, runs_per_dataset=3))
    write_bucket(s3_client, portal)
    ids = write_rows(engine, portal)    # annotation metadata key -> annotation id
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

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
