"""The integrated importers: dataset, run, voxel spacing, annotation and the annotation's children.

Only annotations and their children clean up siblings. An annotation's siblings are the rows of
the voxel spacing being imported (Option B of the spec: its own rows, plus legacy rows of the
run with a NULL voxel spacing whose files lie in it); children's siblings are the children of
the annotations whose metadata was read in this import::

    annotations = AnnotationImporter(storage, paths, run_id=3, voxel_spacing_id=7, voxel_spacing_prefix=prefix)
    found = annotations.find()
    with engine.begin() as conn:
        outcome = annotations.import_items(conn, found)
        ...children...
        annotations.cleanup_unused_items(conn, outcome)   # the shared deletion routine, audited
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, any_, exists, or_, select, text
from sqlalchemy.sql import ColumnElement

from annotation_reconciler.db_import import items
from annotation_reconciler.db_import.base import (
    FindResult,
    FoundItem,
    ImportOutcome,
    ImportProblem,
    IntegratedDBImporter,
    ItemsFinder,
    StoredPaths,
    id_array,
    table_of,
)
from annotation_reconciler.db_import.finders import DatasetFinder, MetadataFileFinder, RunFinder, VoxelSpacingFinder
from annotation_reconciler.deletions import DeletionOutcome, Policy, delete_stale, fresh_candidates
from annotation_reconciler.errors import MissingParentError
from annotation_reconciler.evidence import dataset_neighbours
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.paths import annotations_prefix
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.storage import S3Storage

ANNOTATION = table_of("annotation")
SHAPE = table_of("annotation_shape")
FILE = table_of("annotation_file")


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


class AnnotationImporter(IntegratedDBImporter):
    """The annotations of one voxel spacing, found under ``{voxel_spacing.s3_prefix}/Annotations/``."""

    finder = MetadataFileFinder
    row_importer = items.AnnotationItem
    clean_up_siblings = True

    def __init__(
        self,
        storage: S3Storage,
        paths: StoredPaths,
        *,
        run_id: int,
        voxel_spacing_id: int,
        voxel_spacing_prefix: str,
        workers: int = 8,
        policy: Policy | None = None,
    ) -> None:
        self.storage, self.paths, self.workers = storage, paths, workers
        self.run_id, self.voxel_spacing_id, self.voxel_spacing_prefix = run_id, voxel_spacing_id, voxel_spacing_prefix
        self.policy = policy  # None: the sibling cleanup is switched off
        self.deletion: DeletionOutcome | None = None

    @property
    def scope(self) -> str:
        return f"voxel spacing {self.voxel_spacing_id} ({self.voxel_spacing_prefix})"

    def get_finder_args(self) -> dict[str, Any]:
        return {
            "storage": self.storage,
            "prefix": annotations_prefix(self.voxel_spacing_prefix),
            "context": {"run_id": self.run_id, "tomogram_voxel_spacing_id": self.voxel_spacing_id},
            "scope": self.scope,
            "workers": self.workers,
        }

    def get_filters(self) -> list[ColumnElement[bool]]:
        """This voxel spacing's rows, and legacy rows of the run (NULL voxel spacing) with files in it."""
        a = ANNOTATION
        files_here = exists().where(
            SHAPE.c.annotation_id == a.c.id,
            FILE.c.annotation_shape_id == SHAPE.c.id,
            FILE.c.tomogram_voxel_spacing_id == self.voxel_spacing_id,
        )
        legacy = and_(a.c.tomogram_voxel_spacing_id.is_(None), a.c.run_id == self.run_id, files_here)
        return [or_(a.c.tomogram_voxel_spacing_id == self.voxel_spacing_id, legacy)]

    def existing_order(self) -> list[ColumnElement[Any]]:
        # Of two rows with one natural key, keep the one already bound to the voxel spacing.
        return [ANNOTATION.c.tomogram_voxel_spacing_id.is_(None), ANNOTATION.c.id]

    def find(self) -> FindResult:
        self.found = super().find()
        return self.found

    def cleanup_unused_items(self, conn: Connection, outcome: ImportOutcome) -> int:
        """Hand the scope's unused rows to the one deletion flow, with the voxel spacing's listing as evidence.

        Only a complete listing is evidence, and only for keys under the listed prefix: rows whose
        metadata lives elsewhere (a legacy row of another voxel spacing, a row of another run) are
        left in place and reported. Nothing happens without a policy (cleanup switched off).
        """
        found = getattr(self, "found", None)
        if self.policy is None or not self.clean_up_siblings or not outcome.cleanup_allowed or found is None:
            return 0
        if not outcome.unused:
            return 0
        current = annotation_rows.annotations_by_ids(conn, [int(r["id"]) for r in outcome.unused])
        done = delete_stale(
            conn,
            fresh_candidates([current[i] for i in sorted(current)]),
            found.listings,
            self.paths.layout,
            self.policy,
            source=Source.IMPORTER,
            reason=f"not found in S3 on re-ingestion of voxel spacing {self.voxel_spacing_id}",
            now=datetime.datetime.now(datetime.UTC),
            neighbours=dataset_neighbours(self.storage, found.listings, concurrency=1),
        )
        self.deletion = done
        outcome.removed.update(done.rows_deleted)
        outcome.removed_ids += done.deleted
        return len(done.deleted)


class _ChildImporter(IntegratedDBImporter):
    """Children of the annotations imported in this scope (and only of those: never of one not read)."""

    finder = ItemsFinder
    clean_up_siblings = True

    def __init__(self, paths: StoredPaths, annotations: ImportOutcome, scope: str) -> None:
        self.paths, self.annotations, self._scope = paths, annotations, scope

    @property
    def scope(self) -> str:
        return self._scope

    def get_finder_args(self) -> dict[str, Any]:
        return {"items": self.child_items()}

    def child_items(self) -> Iterator[FoundItem]:
        for item, row in self.annotations.imported:
            yield from self.children_of(item, int(row["id"]))

    def children_of(self, item: FoundItem, annotation_id: int) -> Iterable[FoundItem]:
        raise NotImplementedError

    def get_filters(self) -> list[ColumnElement[bool]]:
        return [self.table.c.annotation_id == any_(id_array(self.annotations.ids, "annotation_ids"))]


class AnnotationShapeImporter(_ChildImporter):
    row_importer = items.AnnotationShapeItem

    def children_of(self, item: FoundItem, annotation_id: int) -> Iterable[FoundItem]:
        shapes = dict.fromkeys(entry["shape"] for entry in item.data["files"])
        return [FoundItem({"shape": shape}, {"annotation_id": annotation_id}, item.key) for shape in shapes]

    def delete_rows(self, conn: Connection, ids: list[int]) -> list[int]:
        """Delete unused shapes once no file points at them (files of other voxel spacings keep theirs)."""
        no_files = ~exists().where(FILE.c.annotation_shape_id == SHAPE.c.id)
        statement = SHAPE.delete().where(SHAPE.c.id == any_(id_array(ids)), no_files).returning(SHAPE.c.id)
        return list(conn.execute(statement).scalars())


class AnnotationFileImporter(_ChildImporter):
    """Files of this voxel spacing (or of none) under the imported annotations' shapes."""

    row_importer = items.AnnotationFileItem

    def __init__(
        self, paths: StoredPaths, annotations: ImportOutcome, shapes: ImportOutcome, scope: str, voxel_spacing_id: int
    ) -> None:
        super().__init__(paths, annotations, scope)
        self.voxel_spacing_id = voxel_spacing_id
        self.shape_ids = {(row["annotation_id"], row["shape_type"]): int(row["id"]) for _, row in shapes.imported}

    def children_of(self, item: FoundItem, annotation_id: int) -> Iterable[FoundItem]:
        for entry in item.data["files"]:
            context = {
                "annotation_shape_id": self.shape_ids[(annotation_id, entry["shape"])],
                "tomogram_voxel_spacing_id": self.voxel_spacing_id,
            }
            yield FoundItem(entry, context, item.key)

    def get_filters(self) -> list[ColumnElement[bool]]:
        shapes = select(SHAPE.c.id).where(
            SHAPE.c.annotation_id == any_(id_array(self.annotations.ids, "annotation_ids"))
        )
        here = or_(
            FILE.c.tomogram_voxel_spacing_id == self.voxel_spacing_id, FILE.c.tomogram_voxel_spacing_id.is_(None)
        )
        return [FILE.c.annotation_shape_id.in_(shapes), here]


class AnnotationAuthorImporter(_ChildImporter):
    row_importer = items.AnnotationAuthorItem

    def children_of(self, item: FoundItem, annotation_id: int) -> Iterable[FoundItem]:
        return [
            FoundItem(entry, {"annotation_id": annotation_id, "author_list_order": order}, item.key)
            for order, entry in enumerate(item.data.get("authors") or [])
        ]


class AnnotationMethodLinkImporter(_ChildImporter):
    row_importer = items.AnnotationMethodLinkItem

    def children_of(self, item: FoundItem, annotation_id: int) -> Iterable[FoundItem]:
        return [
            FoundItem(entry, {"annotation_id": annotation_id}, item.key)
            for entry in item.data.get("method_links") or []
        ]


def import_annotation_children(
    conn: Connection, paths: StoredPaths, annotations: ImportOutcome, scope: str, voxel_spacing_id: int
) -> list[ImportOutcome]:
    """Upsert shapes, files, authors and method links of the imported annotations; delete the unused ones."""
    if not annotations.imported:
        return []
    shapes = AnnotationShapeImporter(paths, annotations, scope)
    shape_outcome = shapes.import_items(conn, shapes.find())
    outcomes = [shape_outcome]
    others: list[IntegratedDBImporter] = [
        AnnotationFileImporter(paths, annotations, shape_outcome, scope, voxel_spacing_id),
        AnnotationAuthorImporter(paths, annotations, scope),
        AnnotationMethodLinkImporter(paths, annotations, scope),
    ]
    for importer in others:
        outcome = importer.import_items(conn, importer.find())
        importer.cleanup_unused_items(conn, outcome)
        outcomes.append(outcome)
    shapes.cleanup_unused_items(conn, shape_outcome)  # after the files that pointed at them are gone
    return outcomes


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


@dataclass(frozen=True)
class LegacyAnnotation:
    """An annotation with a NULL voxel spacing that the importer left alone (reported, never deleted)."""

    id: int
    run_id: int
    annotation_ingest_id: str | None
    s3_metadata_path: str
    voxel_spacing_ids: tuple[int, ...]

    @property
    def reason(self) -> str:
        if not self.voxel_spacing_ids:
            return "no annotation files: its voxel spacing cannot be told"
        spacings = ", ".join(str(v) for v in self.voxel_spacing_ids)
        return f"files only in voxel spacings not imported ({spacings})"


_LEGACY = text("""
SELECT a.id, a.run_id, a.annotation_ingest_id, a.s3_metadata_path,
       ARRAY(SELECT DISTINCT f.tomogram_voxel_spacing_id
             FROM annotation_file f JOIN annotation_shape s ON s.id = f.annotation_shape_id
             WHERE s.annotation_id = a.id AND f.tomogram_voxel_spacing_id IS NOT NULL
             ORDER BY 1) AS voxel_spacing_ids
FROM annotation a
WHERE a.run_id = :run_id AND a.tomogram_voxel_spacing_id IS NULL
ORDER BY a.id
""")


def legacy_annotations(conn: Connection, run_id: int) -> list[LegacyAnnotation]:
    """The run's annotations still without a voxel spacing (run it after importing the run's voxel spacings)."""
    return [
        LegacyAnnotation(r.id, r.run_id, r.annotation_ingest_id, r.s3_metadata_path, tuple(r.voxel_spacing_ids or ()))
        for r in conn.execute(_LEGACY, {"run_id": run_id})
    ]


__all__ = [
    "AnnotationAuthorImporter",
    "AnnotationFileImporter",
    "AnnotationImporter",
    "AnnotationMethodLinkImporter",
    "AnnotationShapeImporter",
    "DatasetImporter",
    "LegacyAnnotation",
    "MissingParentError",
    "RunImporter",
    "VoxelSpacingImporter",
    "ensure_depositions",
    "import_annotation_children",
    "legacy_annotations",
]
