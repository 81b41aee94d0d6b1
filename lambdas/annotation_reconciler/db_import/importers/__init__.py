"""The integrated importers: dataset, run, voxel spacing, annotation and the annotation's children.

``scopes`` holds the dataset, run and voxel spacing importers (and the deposition check),
``annotation`` the annotation importer and its sibling cleanup, ``children`` the importers of
an annotation's shapes, files, authors and method links.

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

from annotation_reconciler.db_import.importers.annotation import AnnotationImporter
from annotation_reconciler.db_import.importers.children import (
    AnnotationAuthorImporter,
    AnnotationFileImporter,
    AnnotationMethodLinkImporter,
    AnnotationShapeImporter,
    import_annotation_children,
)
from annotation_reconciler.db_import.importers.legacy import LegacyAnnotation, legacy_annotations
from annotation_reconciler.db_import.importers.scopes import (
    DatasetImporter,
    RunImporter,
    VoxelSpacingImporter,
    ensure_depositions,
)
from annotation_reconciler.errors import MissingParentError

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
