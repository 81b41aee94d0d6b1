"""The annotation importer: the annotations of one voxel spacing, and their sibling cleanup.

Existing rows are found as the portal's importer finds them: by the natural key
``(run_id, deposition_id, annotation_ingest_id)`` anywhere in the run (a legacy row with a NULL voxel
spacing and no files included), and updated, never duplicated. Two guards the portal lacks keep an
import from writing a stored path into ambiguity: a natural key found in two metadata files is not
imported at all, and a row is re-pointed to another metadata key only once its stored key is proven
gone from S3 (a complete listing of its folder lacks it and every spelling twin of it); otherwise the
row keeps its stored path and the report names the files to resolve.

An annotation's siblings, the rows the cleanup may remove, stay as narrow as before: the rows of the
voxel spacing being imported (Option B of the spec: its own rows, plus legacy rows of the run with a
NULL voxel spacing whose files lie in it). The unused ones go to the one deletion flow; legacy rows
left alone are reported (:func:`.legacy.legacy_annotations`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ARRAY, Connection, String, and_, any_, bindparam, exists, or_, select
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import BindParameter

from annotation_reconciler.db_import import items
from annotation_reconciler.db_import.base import (
    FindResult,
    FoundItem,
    ImportProblem,
    ImportResult,
    IntegratedDBImporter,
    Key,
    Matches,
    Row,
    StoredPaths,
    table_of,
)
from annotation_reconciler.db_import.finders import MetadataFileFinder, file_sizes
from annotation_reconciler.errors import MetadataError, StorageError
from annotation_reconciler.ledger import Source
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules.listings import Listings, Seen, canonical, listing_prefixes
from annotation_reconciler.rules.ordering import Clock, utcnow
from annotation_reconciler.rules.paths import KeyKind, annotations_prefix, classify_key, voxel_spacing_prefix
from annotation_reconciler.service.deletions import Policy, delete_stale, fresh_candidates
from annotation_reconciler.service.evidence import dataset_neighbours
from annotation_reconciler.service.results import DeletionResult
from annotation_reconciler.storage import S3Storage

ANNOTATION = table_of("annotation")
SHAPE = table_of("annotation_shape")
FILE = table_of("annotation_file")


@dataclass
class FileFacts:
    """What an annotation's file rows need beyond its metadata, read from S3 before the transaction."""

    dataset_deposition_id: int | None = None
    sizes: dict[str, int | StorageError] = field(default_factory=dict)  # file key -> total size, or the error


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
        dataset_deposition_id: int | None = None,
    ) -> None:
        self.storage, self.paths, self.workers, self.clock = storage, paths, workers, clock
        self.run_id, self.voxel_spacing_id, self.voxel_spacing_prefix = run_id, voxel_spacing_id, voxel_spacing_prefix
        self.policy = policy  # None: the sibling cleanup is switched off
        self.deletion: DeletionResult | None = None
        self.found: FindResult | None = None  # what find() read: the listings the cleanup needs as evidence
        self.facts = FileFacts(dataset_deposition_id)
        self._listings: dict[str, frozenset[str] | StorageError] = {}  # extra listings a re-pointing needed

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
        """The metadata (a LIST and a GET each) and the size of every file it names (one more paginated LIST of
        ``Annotations/`` for the files under it, one LIST per file elsewhere)."""
        found = super().find()
        file_keys = {
            key
            for item in found.items
            for entry in _entries(item.data.get("files"))
            if isinstance(entry.get("path"), str) and (key := self.paths.layout.to_key(entry["path"])) is not None
        }
        listed = annotations_prefix(self.voxel_spacing_prefix)
        self.facts.sizes = file_sizes(self.storage, file_keys, listed, workers=self.workers)
        for key, size in sorted(self.facts.sizes.items()):
            if isinstance(size, StorageError):
                found.problems.append(ImportProblem(self.scope, f"file size unknown, the stored one kept: {size}", key))
        self.found = found
        return found

    def map_items(self, found: FindResult) -> tuple[dict[Key, tuple[FoundItem, Row]], list[ImportProblem]]:
        """Rows wanted by natural key. A natural key found in two metadata files is held back whole: either file
        may be the stray copy, so neither is imported and no row is re-pointed to one of them."""
        problems = list(found.problems)
        by_key: dict[Key, list[tuple[FoundItem, Row]]] = {}
        for item in found.items:
            try:
                row = self.row_importer(item, self.paths).to_row()
            except MetadataError as exc:
                problems.append(ImportProblem(self.scope, f"not imported: {exc}", item.key))
                continue
            by_key.setdefault(self.row_importer.key_of(row), []).append((item, row))
        wanted: dict[Key, tuple[FoundItem, Row]] = {}
        for key, entries in by_key.items():
            if len(entries) == 1:
                wanted[key] = entries[0]
                continue
            files = " and ".join(str(item.key) for item, _ in entries)
            problems.append(
                ImportProblem(
                    self.scope,
                    f"natural key {key} found twice, in {files}: neither is imported and no row is re-pointed to "
                    "either (keep one of the files, then ingest again)",
                    entries[0][0].key,
                )
            )
        self.held_keys = frozenset(key for key, entries in by_key.items() if len(entries) > 1)
        return wanted, problems

    def load_matches(
        self, conn: Connection, wanted: Mapping[Key, tuple[FoundItem, Row]], in_scope: list[Row]
    ) -> Matches:
        """Rows with a wanted natural key anywhere in the run (the portal's lookup), legacy rows included, except
        the annotations of another voxel spacing: a row bound elsewhere whose metadata lies in that voxel spacing's
        folder is not this file's row, even when the portal's key says so (``NNN`` counts per voxel spacing)."""
        rows = {int(r["id"]): r for r in in_scope}
        ingest_ids = sorted({row["annotation_ingest_id"] for _, row in wanted.values()})
        if ingest_ids:
            a = ANNOTATION
            query = select(a).where(
                a.c.run_id == self.run_id, a.c.annotation_ingest_id == any_(_text_array(ingest_ids))
            )
            rows.update({int(r["id"]): dict(r) for r in conn.execute(query).mappings()})
        matches: Matches = {}
        for row_id in sorted(rows):
            if self.belongs_here(rows[row_id]):
                matches.setdefault(self.row_importer.key_of(rows[row_id]), []).append(rows[row_id])
        return matches

    def belongs_here(self, row: Row) -> bool:
        """May this row be the row of a metadata file of this voxel spacing? Yes when it is bound to it, or when
        its stored key lies in no other voxel spacing's folder (a legacy row, or one bound elsewhere by mistake)."""
        if row["tomogram_voxel_spacing_id"] == self.voxel_spacing_id:
            return True
        key = self.paths.layout.to_key(row["s3_metadata_path"])
        folder = voxel_spacing_prefix(key) if key else None
        if folder is None:
            return row["tomogram_voxel_spacing_id"] is None
        return same_folder(folder, self.voxel_spacing_prefix)

    def pick(
        self, conn: Connection, key: Key, item: FoundItem, row: Row, candidates: list[Row]
    ) -> Row | ImportProblem | None:
        """Of the rows with this natural key: the one whose stored key is the found one, else the one bound to
        this voxel spacing, else a legacy row, else any (oldest first). Re-pointing it to the found key needs
        proof that its stored key is gone; without it the row keeps its path and the key is held back."""
        if not candidates:
            return None
        layout, new_key = self.paths.layout, item.key

        def rank(r: Row) -> tuple[bool, bool, bool, int]:
            bound = r["tomogram_voxel_spacing_id"]
            return (
                layout.to_key(r["s3_metadata_path"]) != new_key,
                bound != self.voxel_spacing_id,
                bound is not None,
                int(r["id"]),
            )

        best = min(candidates, key=rank)
        old_key = layout.to_key(best["s3_metadata_path"])
        if old_key == new_key:
            return best
        why = self.not_gone(old_key, str(new_key))
        if why is None:
            return best
        return ImportProblem(
            self.scope,
            f"natural key {key}: annotation {best['id']} stores {best['s3_metadata_path']!r} and {new_key} holds the "
            f"same annotation; {why}. The row keeps its stored path and nothing of it is written (remove the stray "
            "file, then ingest again)",
            new_key,
        )

    def not_gone(self, old_key: str | None, new_key: str) -> str | None:
        """None when ``old_key`` is proven absent from S3 (complete listings of every prefix that could hold it or
        a spelling twin of it show neither, ``new_key`` aside); otherwise why it is not."""
        if old_key is None or classify_key(old_key) is not KeyKind.METADATA:
            return "its stored path is not an annotation metadata key of this bucket, so it cannot be shown gone"
        listings = Listings({prefix: self._listing(prefix) for prefix in listing_prefixes(old_key)})
        presence = listings.presence(old_key, besides={new_key})
        if presence.seen is Seen.NOT_LISTED:
            return f"its folder could not be listed ({presence.error})"
        if presence.seen is Seen.LISTED:
            return "that key is still in S3"
        if presence.seen is Seen.TWIN:
            return f"{presence.listed_as} in S3 differs from it only in spelling"
        return None

    def _listing(self, prefix: str) -> frozenset[str] | StorageError:
        """A complete listing of ``prefix``: the one find() made, else one LIST now (cached)."""
        if self.found is not None and prefix in self.found.listings:
            return self.found.listings[prefix]
        if prefix not in self._listings:
            try:
                self._listings[prefix] = frozenset(self.storage.list_keys(prefix))
            except StorageError as exc:
                self._listings[prefix] = exc
        return self._listings[prefix]

    def cleanup_unused_items(self, conn: Connection, outcome: ImportResult) -> None:
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


_SPACING_RE = re.compile(r"^(?P<run>.*/)VoxelSpacing(?P<spacing>[0-9]+(?:\.[0-9]+)?)/$")


def same_folder(one: str, other: str) -> bool:
    """Do two voxel spacing folders name one voxel spacing: equal but for spelling (case, Unicode form) or for
    the digits of the spacing (``VoxelSpacing13.48/`` and ``VoxelSpacing13.480/``)?"""
    a, b = _SPACING_RE.match(one), _SPACING_RE.match(other)
    if a is None or b is None:
        return canonical(one) == canonical(other)
    same_run = canonical(a["run"]) == canonical(b["run"])
    return same_run and round(float(a["spacing"]), 3) == round(float(b["spacing"]), 3)


def _entries(value: Any) -> list[Mapping[str, Any]]:
    return [entry for entry in value if isinstance(entry, Mapping)] if isinstance(value, list) else []


def _text_array(values: list[str]) -> BindParameter[Any]:
    array: ARRAY[Any] = ARRAY(String)
    return bindparam("ingest_ids", values, type_=array)


__all__ = ["AnnotationImporter", "FileFacts"]
