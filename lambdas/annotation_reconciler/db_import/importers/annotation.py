"""The annotation importer: the annotations of one voxel spacing, and their sibling cleanup.

An annotation's siblings are the rows of the voxel spacing being imported (Option B of the spec:
its own rows, plus legacy rows of the run with a NULL voxel spacing whose files lie in it). The
unused ones go to the one deletion flow; legacy rows left alone are reported
(:func:`legacy_annotations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, exists, or_, text
from sqlalchemy.sql import ColumnElement

from annotation_reconciler.core import Clock, utcnow
from annotation_reconciler.db_import import items
from annotation_reconciler.db_import.base import FindResult, ImportOutcome, IntegratedDBImporter, StoredPaths, table_of
from annotation_reconciler.db_import.finders import MetadataFileFinder
from annotation_reconciler.deletions import DeletionOutcome, Policy, delete_stale, fresh_candidates
from annotation_reconciler.evidence import dataset_neighbours
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.paths import annotations_prefix
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.storage import S3Storage

ANNOTATION = table_of("annotation")
SHAPE = table_of("annotation_shape")
FILE = table_of("annotation_file")


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
        clock: Clock = utcnow,
    ) -> None:
        self.storage, self.paths, self.workers, self.clock = storage, paths, workers, clock
        self.run_id, self.voxel_spacing_id, self.voxel_spacing_prefix = run_id, voxel_spacing_id, voxel_spacing_prefix
        self.policy = policy  # None: the sibling cleanup is switched off
        self.deletion: DeletionOutcome | None = None
        self.found: FindResult | None = None  # what find() read: the listings the cleanup needs as evidence

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

    def cleanup_unused_items(self, conn: Connection, outcome: ImportOutcome) -> None:
        """Hand the scope's unused rows to the one deletion flow, with the voxel spacing's listing as evidence.

        Only a complete listing is evidence, and only for keys under the listed prefix: rows whose
        metadata lives elsewhere (a legacy row of another voxel spacing, a row of another run) are
        left in place and reported. Nothing happens without a policy (cleanup switched off).
        """
        found = self.found
        if self.policy is None or not self.clean_up_siblings or not outcome.cleanup_allowed or found is None:
            return
        if not outcome.unused:
            return
        current = annotation_rows.annotations_by_ids(conn, [int(r["id"]) for r in outcome.unused])
        done = delete_stale(
            conn,
            fresh_candidates([current[i] for i in sorted(current)]),
            found.listings,
            self.paths.layout,
            self.policy,
            source=Source.IMPORTER,
            reason=f"not found in S3 on re-ingestion of voxel spacing {self.voxel_spacing_id}",
            now=self.clock(),
            neighbours=dataset_neighbours(self.storage, found.listings, concurrency=1),
        )
        self.deletion = done
        outcome.removed.update(done.rows_deleted)
        outcome.deleted_ids += done.deleted


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


__all__ = ["AnnotationImporter", "LegacyAnnotation", "legacy_annotations"]
