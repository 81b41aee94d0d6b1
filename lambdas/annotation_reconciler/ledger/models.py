"""The reconciler's own tables. They are created only by the migrations in ``ledger/migrations``."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, MetaData, String, Text, false, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from annotation_reconciler.ledger import AUDIT_SCHEMA, LEDGER_SCHEMA

# The status vocabulary lives in the package (``ledger/__init__.py``) so that the SQL modules need not import the
# ORM; re-exported here for the models' readers.
from annotation_reconciler.ledger import OPEN_STATUS_LIST as OPEN_STATUS_LIST
from annotation_reconciler.ledger import OPEN_STATUSES as OPEN_STATUSES
from annotation_reconciler.ledger import Source as Source
from annotation_reconciler.ledger import Status as Status


class LedgerBase(DeclarativeBase):
    """Declarative base for the reconciler's working tables (in :data:`LEDGER_SCHEMA`)."""

    metadata = MetaData(schema=LEDGER_SCHEMA)


class AuditBase(DeclarativeBase):
    """Declarative base for what the reconciler's roles may only read (in :data:`AUDIT_SCHEMA`)."""

    metadata = MetaData(schema=AUDIT_SCHEMA)


class AnnotationQuarantine(LedgerBase):
    """One stale annotation's life: quarantined, then released, purged or held."""

    __tablename__ = "annotation_quarantine"
    __table_args__ = (
        Index(
            "uq_annotation_quarantine_open",
            "annotation_id",
            unique=True,
            postgresql_where=text("status IN ('quarantined', 'held')"),
        ),
        Index("ix_annotation_quarantine_due", "status", "purge_after"),
        Index("ix_annotation_quarantine_dataset", "dataset_id", "status"),
        Index("ix_annotation_quarantine_metadata_key_folded", "metadata_key_folded"),
        Index("ix_annotation_quarantine_exempt", "annotation_id", postgresql_where=text("exempt")),
        Index("ix_annotation_quarantine_resolved_at", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    annotation_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    dataset_id: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer)
    s3_metadata_path: Mapped[str] = mapped_column(String, nullable=False)
    metadata_key: Mapped[str | None] = mapped_column(String)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(String, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    detected_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    purge_after: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    resolved_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(String)
    approved_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String)
    claimed_until: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
    metadata_key_folded: Mapped[str | None] = mapped_column(String)  # listings.canonical(metadata_key)
    # An operator's release: no new quarantine while the stored path is this one and the metadata
    # has not been seen again (`release --clear` ends it by hand).
    exempt: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    resolved_by: Mapped[str | None] = mapped_column(String)  # the operator of a release or a restore
    restored_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
    # The event that opened or last closed the row (for a row a listing opened: when that listing started).
    event_time: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
    event_sequencer: Mapped[str | None] = mapped_column(String)
    event_until: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))  # its time's interval end
    # The last purge that could not delete this row alone: its error, when, and how many purges in a row.
    purge_error: Mapped[str | None] = mapped_column(String)
    purge_failed_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
    purge_failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    unknown_reason: Mapped[str | None] = mapped_column(String)  # why the last purge could not decide the row


class MissingAnnotationFile(LedgerBase):
    """An annotation data file whose object was removed from S3; reported, never deleted for."""

    __tablename__ = "missing_annotation_file"
    __table_args__ = (
        Index(
            "uq_missing_annotation_file_open",
            "annotation_file_id",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index(
            "ix_missing_annotation_file_open_keys",
            "removed_keys",
            postgresql_using="gin",
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    annotation_file_id: Mapped[int] = mapped_column(Integer, nullable=False)
    annotation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    s3_path: Mapped[str] = mapped_column(String, nullable=False)
    removed_key: Mapped[str] = mapped_column(String, nullable=False)  # the first removed key
    # every removed key still missing; the report closes when the last one is back
    removed_keys: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    detected_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    resolved_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))


class AnnotationResurrection(LedgerBase):
    """A purged annotation whose metadata key was found in S3 again (a Created event or a scan):
    the deletion raced a re-upload, or the metadata was restored. Listed by ``status`` with the
    command that re-ingests it."""

    __tablename__ = "annotation_resurrection"
    __table_args__ = (Index("uq_annotation_resurrection_quarantine", "quarantine_id", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    quarantine_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    annotation_id: Mapped[int] = mapped_column(Integer, nullable=False)
    dataset_id: Mapped[int | None] = mapped_column(Integer)
    metadata_key: Mapped[str] = mapped_column(String, nullable=False)
    purged_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    found_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    found_by: Mapped[str] = mapped_column(String(16), nullable=False)
    resolved_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))


class BlindPrefix(LedgerBase):
    """An ``Annotations/`` prefix that S3 would not list after its retries: the scan is blind there until
    it lists again. Reported by ``status`` and the PrefixesBlind metric; every other prefix is still scanned."""

    __tablename__ = "blind_prefix"

    prefix: Mapped[str] = mapped_column(String, primary_key=True)
    dataset_id: Mapped[int | None] = mapped_column(Integer)
    first_failed_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_failed_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    last_error: Mapped[str] = mapped_column(String, nullable=False)
    resolved_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))


class DeletedAnnotation(AuditBase):
    """One deleted annotation: exactly the rows the deletion removed (the annotation, its shapes, files, authors and
    method links), written by the deleting function itself. The reconciler's roles may read it, never write it:
    it is the only thing ``restore`` puts back."""

    __tablename__ = "deleted_annotation"
    __table_args__ = (
        Index("ix_deleted_annotation_annotation_id", "annotation_id"),
        Index("ix_deleted_annotation_dataset", "dataset_id", "deleted_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    annotation_id: Mapped[int] = mapped_column(Integer, nullable=False)
    dataset_id: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer)
    s3_metadata_path: Mapped[str] = mapped_column(String, nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # event, scan, importer, cli
    reason: Mapped[str] = mapped_column(String, nullable=False)
    deleted_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)  # caller's clock
    recorded_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )  # the server's
    deleted_by: Mapped[str] = mapped_column(String, nullable=False)  # the database login that called
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    restored_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
    restored_by: Mapped[str | None] = mapped_column(String)


class UntrackedMetadata(LedgerBase):
    """A metadata key in S3 that no annotation row points to (found by a scan or an S3 Inventory): reported by
    ``status`` and the MetadataUntracked metric until a listing of its prefix shows it tracked or gone. When it
    carries the natural key of an annotation whose own key is gone, that annotation was *moved* here."""

    __tablename__ = "untracked_metadata"
    __table_args__ = (Index("ix_untracked_metadata_prefix", "prefix", "resolved_at"),)

    metadata_key: Mapped[str] = mapped_column(String, primary_key=True)
    prefix: Mapped[str] = mapped_column(String, nullable=False)  # its Annotations/ prefix
    dataset_id: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_seen_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    moved_annotation_id: Mapped[int | None] = mapped_column(Integer)
    resolved_at: Mapped[datetime.datetime | None] = mapped_column(DateTime(timezone=True))
