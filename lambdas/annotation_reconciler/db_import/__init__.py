"""The importer (Phase 2): S3 metadata -> portal rows, with sibling cleanup scoped to the voxel spacing.

    result = ingest(engine, S3Storage(client, bucket), BucketLayout(bucket), dataset_id=10001)

``base`` is the framework (finders, item importers, integrated importers), ``finders`` reads S3,
``items`` maps metadata JSON to rows (``converters`` its values), ``importers`` holds one importer
per table and the voxel-spacing scope of the cleanup, ``service`` runs an ingestion.
"""

from annotation_reconciler.db_import.service import IngestProgress, IngestResult, ingest
from annotation_reconciler.errors import LedgerMissingError

__all__ = ["IngestProgress", "IngestResult", "LedgerMissingError", "ingest"]
