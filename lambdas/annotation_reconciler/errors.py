"""Every exception the package raises on purpose, under one base: :class:`ReconcilerError`.

Each says what went wrong *and what to do*, and each keeps the builtin base it always had
(``ValueError`` for bad input, ``RuntimeError`` for a state of the world), so ``except ValueError``
in a caller still works. An exception here never means "missing": a caller that cannot read S3 or
the database decides nothing.

    >>> issubclass(StorageError, ReconcilerError) and issubclass(SettingsError, ValueError)
    True
    >>> str(SettingsError(["RECONCILER_DRY_RUN='ture' is not a boolean", "grace < 0"]))
    "invalid configuration: RECONCILER_DRY_RUN='ture' is not a boolean; grace < 0"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from annotation_reconciler.names import Env

if TYPE_CHECKING:
    from annotation_reconciler.db_import.base import ImportProblem

__all__ = [
    "ConcurrentChangeError",
    "DatabaseUrlError",
    "EventShapeError",
    "InventoryError",
    "InventoryStale",
    "InventoryTooLarge",
    "LedgerMissingError",
    "LedgerSchemaError",
    "MetadataError",
    "MissingParentError",
    "PageLimitError",
    "ReconcilerError",
    "SettingsError",
    "StorageError",
]


class ReconcilerError(Exception):
    """The base of every exception the reconciler raises on purpose."""


# Bad input: the message says which value to fix.


class SettingsError(ReconcilerError, ValueError):
    """The environment holds a value the reconciler refuses; the message says what to fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


class DatabaseUrlError(ReconcilerError, ValueError):
    """The database URL cannot be used; the message says what to set instead."""


class EventShapeError(ReconcilerError, ValueError):
    """The event is none of the shapes the reconciler accepts; the message says what was expected."""


class InventoryError(ReconcilerError, ValueError):
    """The inventory cannot be trusted (wrong bucket, unknown format, missing fields, bad checksum)."""


class InventoryStale(InventoryError):
    """The newest inventory report is older than the freshness limit: it is not used."""


class MetadataError(ReconcilerError, ValueError):
    """A metadata document cannot be mapped to a row; the message says which field is wrong."""


# The state of the world: nothing was decided from it.


class StorageError(ReconcilerError, RuntimeError):
    """S3 could not answer; the state of the object is unknown."""

    def __init__(self, operation: str, bucket: str, key: str, cause: BaseException) -> None:
        self.operation, self.bucket, self.key, self.cause = operation, bucket, key, cause
        code = ""
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
        self.code = code
        super().__init__(f"S3 {operation} failed for s3://{bucket}/{key}: {code or type(cause).__name__}: {cause}")


class PageLimitError(StorageError):
    """A prefix needs more LIST pages than allowed (``RECONCILER_SCAN_PAGE_LIMIT``): its state is unknown."""

    def __init__(self, bucket: str, prefix: str, limit: int) -> None:
        cause = RuntimeError(f"more than {limit} LIST pages ({Env.SCAN_PAGE_LIMIT}={limit})")
        super().__init__("ListObjectsV2", bucket, prefix, cause)
        self.limit = limit


class InventoryTooLarge(ReconcilerError, RuntimeError):
    """The report could not be read within the time budget; nothing was queued or decided."""


class LedgerSchemaError(ReconcilerError, RuntimeError):
    """The ledger's schemas are missing and this role may not create them, or they hold objects the migrations
    did not make; the message says what the owner runs."""


class LedgerMissingError(ReconcilerError, RuntimeError):
    """The database lacks the reconciler's tables: run ``annotation-reconciler migrate`` first."""


class MissingParentError(ReconcilerError, RuntimeError):
    """Rows of a scope name a parent the database lacks; the scope is refused whole (nothing written)."""

    def __init__(self, problem: ImportProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class ConcurrentChangeError(ReconcilerError, RuntimeError):
    """A row changed while it was being deleted (its stored path was rewritten, or a child was added):
    the caller's transaction must roll back, and nothing of the batch is deleted."""


class CleanupError(ReconcilerError):
    """A failure that stops ``cleanup-stale-annotations`` before any deletion (the command exits 1 with it)."""
