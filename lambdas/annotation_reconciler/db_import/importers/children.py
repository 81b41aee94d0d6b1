"""The importers of an annotation's children: shapes, files, authors and method links.

Their siblings are the children of the annotations whose metadata was read in this import (never
of one not read); :func:`import_annotation_children` runs them in order, shapes last to clean up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import ARRAY, Connection, String, any_, bindparam, exists, or_, select, text
from sqlalchemy.sql import ColumnElement

from annotation_reconciler.db_import import items
from annotation_reconciler.db_import.base import (
    KEEP,
    FoundItem,
    ImportResult,
    IntegratedDBImporter,
    ItemsFinder,
    StoredPaths,
    id_array,
)
from annotation_reconciler.db_import.importers.annotation import FILE, SHAPE, FileFacts
from annotation_reconciler.errors import StorageError

# The portal's alignment rows of a run by the stored path of their metadata (the portal looks one up per file;
# one query per voxel spacing here, the oldest row of a path when there are several).
_ALIGNMENTS = text("""
SELECT s3_alignment_metadata, min(id) FROM alignment
WHERE run_id = :run_id AND s3_alignment_metadata = ANY(:paths)
GROUP BY s3_alignment_metadata
""").bindparams(bindparam("paths", type_=ARRAY(String)))


class _ChildImporter(IntegratedDBImporter):
    """Children of the annotations imported in this scope (and only of those: never of one not read)."""

    finder = ItemsFinder
    clean_up_siblings = True

    def __init__(self, paths: StoredPaths, annotations: ImportResult, scope: str) -> None:
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
    """Files of this voxel spacing (or of none) under the imported annotations' shapes.

    ``source``, ``file_size`` and ``alignment_id`` are derived as the portal's importer derives them (see
    :class:`~annotation_reconciler.db_import.items.AnnotationFileItem`); ``alignments`` maps the stored path of an
    alignment's metadata to its row in the run.
    """

    row_importer = items.AnnotationFileItem

    def __init__(
        self,
        paths: StoredPaths,
        annotations: ImportResult,
        shapes: ImportResult,
        scope: str,
        voxel_spacing_id: int,
        facts: FileFacts | None = None,
        alignments: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(paths, annotations, scope)
        self.voxel_spacing_id = voxel_spacing_id
        self.facts = facts or FileFacts()
        self.alignments = dict(alignments or {})
        self.shape_ids = {(row["annotation_id"], row["shape_type"]): int(row["id"]) for _, row in shapes.imported}
        self.depositions = {int(row["id"]): row["deposition_id"] for _, row in annotations.imported}

    def children_of(self, item: FoundItem, annotation_id: int) -> Iterable[FoundItem]:
        alignment = alignment_path(self.paths, item.data.get("alignment_metadata_path"))
        for entry in item.data["files"]:
            size = self.facts.sizes.get(self.paths.layout.to_key(entry["path"]) or "", KEEP)
            context = {
                "annotation_shape_id": self.shape_ids[(annotation_id, entry["shape"])],
                "tomogram_voxel_spacing_id": self.voxel_spacing_id,
                "annotation_deposition_id": self.depositions[annotation_id],
                "dataset_deposition_id": self.facts.dataset_deposition_id,
                "file_size": KEEP if isinstance(size, StorageError) else size,
                "alignment_id": self.alignments.get(alignment) if alignment else None,
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
            for order, entry in enumerate(item.data.get("authors") or [], start=1)
        ]


class AnnotationMethodLinkImporter(_ChildImporter):
    row_importer = items.AnnotationMethodLinkItem

    def children_of(self, item: FoundItem, annotation_id: int) -> Iterable[FoundItem]:
        return [
            FoundItem(entry, {"annotation_id": annotation_id}, item.key)
            for entry in item.data.get("method_links") or []
        ]


def alignment_path(paths: StoredPaths, named: Any) -> str | None:
    """The stored form of the alignment metadata an annotation names (``alignment_metadata_path``, with or without
    the bucket), as the portal's alignment rows store it; None when it names none in this bucket."""
    key = paths.layout.to_key(named) if isinstance(named, str) else None
    return paths.s3_path(key) if key else None


def alignments_of(conn: Connection, paths: StoredPaths, annotations: ImportResult) -> dict[str, int]:
    """The alignment of the run each imported annotation's metadata names: stored path -> alignment id."""
    named = {alignment_path(paths, item.data.get("alignment_metadata_path")) for item, _ in annotations.imported}
    run_ids = {row["run_id"] for _, row in annotations.imported}
    wanted = sorted(p for p in named if p)
    if not wanted or len(run_ids) != 1:
        return {}
    found = conn.execute(_ALIGNMENTS, {"run_id": run_ids.pop(), "paths": wanted})
    return {str(path): int(alignment_id) for path, alignment_id in found}


def import_annotation_children(
    conn: Connection,
    paths: StoredPaths,
    annotations: ImportResult,
    scope: str,
    voxel_spacing_id: int,
    facts: FileFacts | None = None,
) -> list[ImportResult]:
    """Upsert shapes, files, authors and method links of the imported annotations; delete the unused ones."""
    if not annotations.imported:
        return []
    shapes = AnnotationShapeImporter(paths, annotations, scope)
    shape_outcome = shapes.import_items(conn, shapes.find())
    outcomes = [shape_outcome]
    alignments = alignments_of(conn, paths, annotations)
    others: list[IntegratedDBImporter] = [
        AnnotationFileImporter(paths, annotations, shape_outcome, scope, voxel_spacing_id, facts, alignments),
        AnnotationAuthorImporter(paths, annotations, scope),
        AnnotationMethodLinkImporter(paths, annotations, scope),
    ]
    for importer in others:
        outcome = importer.import_items(conn, importer.find())
        importer.cleanup_unused_items(conn, outcome)
        outcomes.append(outcome)
    shapes.cleanup_unused_items(conn, shape_outcome)  # after the files that pointed at them are gone
    return outcomes


__all__ = [
    "AnnotationAuthorImporter",
    "AnnotationFileImporter",
    "AnnotationMethodLinkImporter",
    "AnnotationShapeImporter",
    "import_annotation_children",
]
