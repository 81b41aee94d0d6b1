"""The scope importers: dataset, run and voxel spacing, the rows an annotation import runs under.

None of them cleans up siblings. :func:`ensure_depositions` refuses a scope whose deposition the
database lacks (the portal's deposition import owns those rows).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.sql import ColumnElement

from annotation_reconciler.db_import import items
from annotation_reconciler.db_import.base import ImportProblem, IntegratedDBImporter, StoredPaths
from annotation_reconciler.db_import.finders import DatasetFinder, RunFinder, VoxelSpacingFinder
from annotation_reconciler.errors import MissingParentError
from annotation_reconciler.storage import S3Storage


class DatasetImporter(IntegratedDBImporter):
    finder = DatasetFinder
    row_importer = items.DatasetItem

    def __init__(self, storage: S3Storage, paths: StoredPaths, dataset_id: int) -> None:
        self.storage, self.paths, self.dataset_id = storage, paths, dataset_id

    @property
    def scope(self) -> str:
        return f"dataset {self.dataset_id}"

    def get_finder_args(self) -> dict[str, Any]:
        return {"storage": self.storage, "root": self.paths.layout.root, "dataset_id": self.dataset_id}

    def get_filters(self) -> list[ColumnElement[bool]]:
        return [self.table.c.id == self.dataset_id]


class RunImporter(IntegratedDBImporter):
    finder = RunFinder
    row_importer = items.RunItem

    def __init__(self, storage: S3Storage, paths: StoredPaths, dataset_id: int, run_name: str | None = None) -> None:
        self.storage, self.paths, self.dataset_id, self.run_name = storage, paths, dataset_id, run_name

    @property
    def scope(self) -> str:
        return f"dataset {self.dataset_id}"

    def get_finder_args(self) -> dict[str, Any]:
        return {
            "storage": self.storage,
            "root": self.paths.layout.root,
            "dataset_id": self.dataset_id,
            "run_name": self.run_name,
        }

    def get_filters(self) -> list[ColumnElement[bool]]:
        filters = [self.table.c.dataset_id == self.dataset_id]
        if self.run_name is not None:
            filters.append(self.table.c.name == self.run_name)
        return filters


class VoxelSpacingImporter(IntegratedDBImporter):
    finder = VoxelSpacingFinder
    row_importer = items.VoxelSpacingItem

    def __init__(
        self, storage: S3Storage, paths: StoredPaths, run_id: int, run_prefix: str, voxel_spacing: float | None = None
    ) -> None:
        self.storage, self.paths, self.run_id, self.run_prefix = storage, paths, run_id, run_prefix
        self.voxel_spacing = voxel_spacing

    @property
    def scope(self) -> str:
        return f"run {self.run_prefix}"

    def get_finder_args(self) -> dict[str, Any]:
        return {
            "storage": self.storage,
            "run_prefix": self.run_prefix,
            "run_id": self.run_id,
            "voxel_spacing": self.voxel_spacing,
        }

    def get_filters(self) -> list[ColumnElement[bool]]:
        return [self.table.c.run_id == self.run_id]


_MISSING_DEPOSITIONS = text("""
SELECT d FROM unnest(CAST(:ids AS integer[])) AS d
WHERE NOT EXISTS (SELECT 1 FROM deposition WHERE deposition.id = d)
ORDER BY d
""")


def ensure_depositions(conn: Connection, deposition_ids: Iterable[int], scope: str) -> None:
    """Refuse ``scope`` (raise :class:`MissingParentError`) when a deposition its rows name is not in the database.

    The importer never writes a deposition: the portal's deposition import owns those rows, and every
    column it would need (title, description, the three dates, all NOT NULL) lives in the deposition's
    own metadata (``depositions_metadata/{id}/``), which this importer does not read. A placeholder
    would be a row the portal never made, so the operator is told what to import first instead.
    """
    ids = sorted(set(deposition_ids))
    if not ids:
        return
    missing = list(conn.execute(_MISSING_DEPOSITIONS, {"ids": ids}).scalars())
    if missing:
        names = ", ".join(str(d) for d in missing)
        raise MissingParentError(
            ImportProblem(
                scope,
                f"deposition {names} is not in the database: import the deposition first (the portal's "
                f"deposition ingestion, depositions_metadata/{missing[0]}/), then run this ingest again; "
                "nothing of this scope was written",
            )
        )


__all__ = ["DatasetImporter", "RunImporter", "VoxelSpacingImporter", "ensure_depositions"]
