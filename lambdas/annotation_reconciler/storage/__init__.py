"""S3 access: listing, existence, reading. Every S3 error is raised, never read as "nothing there"."""

from annotation_reconciler.errors import PageLimitError, StorageError
from annotation_reconciler.storage.s3 import S3Storage, make_s3_client

__all__ = ["PageLimitError", "S3Storage", "StorageError", "make_s3_client"]
