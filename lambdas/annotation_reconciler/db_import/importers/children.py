"""The importers of an annotation's children: shapes, files, authors and method links.

Their siblings are the children of the annotations whose metadata was read in this import (never
of one not read); :func:`import_annotation_children` runs them in order, shapes last to clean up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, any_, exists, or_, select
from sqlalchemy.sql import ColumnElement

from annotation_reconciler.db_import import items
from annotation_reconciler.db_import.base import (
    FoundItem,
    ImportOutcome,
    IntegratedDBImporter,
    ItemsFinder,
    StoredPaths,
    id_array,
)
from annotation_reconciler.db_import.importers.annotation import FILE, SHAPE


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


__all__ = [
    "AnnotationAuthorImporter",
    "AnnotationFileImporter",
    "AnnotationMethodLinkImporter",
    "AnnotationShapeImporter",
    "import_annotation_children",
]
