"""SQLAlchemy 2 models of the portal's apiv2 tables that the reconciler reads and deletes from.

Table and column names, types, lengths and NOT NULL are the portal's own (checked against
``tests/data/portal_schema_facts.json`` by tests/integration/test_portal_schema.py). Foreign keys
carry no ``ON DELETE CASCADE`` (as in production); children are deleted explicitly by
:mod:`annotation_reconciler.portal.deletion`.
Only the columns the reconciler needs are mapped, so a database the portal created, with
more columns and tables, works unchanged.
"""

from __future__ import annotations

import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class PortalBase(DeclarativeBase):
    """Declarative base for the portal's tables (never created by migrations in production)."""


class Alignment(PortalBase):
    """The portal's alignment table, mapped by its key only (annotation_file.alignment_id points at it)."""

    __tablename__ = "alignment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)


class Deposition(PortalBase):
    __tablename__ = "deposition"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String, nullable=False)
    description: Mapped[str] = mapped_column(String, nullable=False)
    deposition_date: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    release_date: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_modified_date: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Dataset(PortalBase):
    __tablename__ = "dataset"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deposition_id: Mapped[int] = mapped_column(ForeignKey("deposition.id"), nullable=False, index=True)
    title: Mapped[str] = mapped_column(String, nullable=False)
    description: Mapped[str] = mapped_column(String, nullable=False)
    s3_prefix: Mapped[str] = mapped_column(String, nullable=False)
    https_prefix: Mapped[str] = mapped_column(String, nullable=False)
    deposition_date: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    release_date: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_modified_date: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Run(PortalBase):
    __tablename__ = "run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String, nullable=False)
    s3_prefix: Mapped[str] = mapped_column(String, nullable=False)
    https_prefix: Mapped[str] = mapped_column(String, nullable=False)


class TomogramVoxelSpacing(PortalBase):
    __tablename__ = "tomogram_voxel_spacing"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("run.id"), index=True)
    voxel_spacing: Mapped[float] = mapped_column(Float, nullable=False)
    s3_prefix: Mapped[str] = mapped_column(String, nullable=False)
    https_prefix: Mapped[str] = mapped_column(String, nullable=False)


class Annotation(PortalBase):
    __tablename__ = "annotation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("run.id"), index=True)
    deposition_id: Mapped[int | None] = mapped_column(ForeignKey("deposition.id"), index=True)
    tomogram_voxel_spacing_id: Mapped[int | None] = mapped_column(ForeignKey("tomogram_voxel_spacing.id"), index=True)
    s3_metadata_path: Mapped[str] = mapped_column(String, nullable=False)
    https_metadata_path: Mapped[str] = mapped_column(String, nullable=False)
    annotation_ingest_id: Mapped[str] = mapped_column(String, nullable=False)
    annotation_publication: Mapped[str | None] = mapped_column(String)
    annotation_method: Mapped[str] = mapped_column(String, nullable=False)
    method_type: Mapped[str] = mapped_column(String(9), nullable=False)  # manual/automated/hybrid/simulated
    ground_truth_status: Mapped[bool | None] = mapped_column(Boolean)
    object_id: Mapped[str] = mapped_column(String, nullable=False)
    object_name: Mapped[str] = mapped_column(String, nullable=False)
    object_description: Mapped[str | None] = mapped_column(String)
    object_state: Mapped[str | None] = mapped_column(String)
    object_count: Mapped[int | None] = mapped_column(Integer)
    confidence_precision: Mapped[float | None] = mapped_column(Float)
    confidence_recall: Mapped[float | None] = mapped_column(Float)
    ground_truth_used: Mapped[str | None] = mapped_column(String)
    annotation_software: Mapped[str | None] = mapped_column(String)
    is_curator_recommended: Mapped[bool | None] = mapped_column(Boolean)
    deposition_date: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    release_date: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_modified_date: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AnnotationShape(PortalBase):
    __tablename__ = "annotation_shape"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotation.id"), index=True)
    shape_type: Mapped[str | None] = mapped_column(String(24))


class AnnotationFile(PortalBase):
    __tablename__ = "annotation_file"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    annotation_shape_id: Mapped[int | None] = mapped_column(ForeignKey("annotation_shape.id"), index=True)
    tomogram_voxel_spacing_id: Mapped[int | None] = mapped_column(ForeignKey("tomogram_voxel_spacing.id"), index=True)
    alignment_id: Mapped[int | None] = mapped_column(ForeignKey("alignment.id"), index=True)
    format: Mapped[str] = mapped_column(String, nullable=False)
    s3_path: Mapped[str] = mapped_column(String, nullable=False)
    https_path: Mapped[str] = mapped_column(String, nullable=False)
    file_size: Mapped[float | None] = mapped_column(Float)
    is_visualization_default: Mapped[bool | None] = mapped_column(Boolean)
    source: Mapped[str | None] = mapped_column(String(15))  # dataset_author/community/portal_standard


class AnnotationAuthor(PortalBase):
    __tablename__ = "annotation_author"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotation.id"), index=True)
    author_list_order: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String, nullable=False)
    orcid: Mapped[str | None] = mapped_column(String)
    email: Mapped[str | None] = mapped_column(String)
    affiliation_name: Mapped[str | None] = mapped_column(String)
    affiliation_address: Mapped[str | None] = mapped_column(String)
    affiliation_identifier: Mapped[str | None] = mapped_column(String)
    corresponding_author_status: Mapped[bool | None] = mapped_column(Boolean)
    primary_author_status: Mapped[bool | None] = mapped_column(Boolean)
    kaggle_id: Mapped[str | None] = mapped_column(String)


class AnnotationMethodLink(PortalBase):
    __tablename__ = "annotation_method_link"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotation.id"), index=True)
    link_type: Mapped[str] = mapped_column(String(14), nullable=False)  # documentation/models_weights/...
    name: Mapped[str | None] = mapped_column(String)
    link: Mapped[str] = mapped_column(String, nullable=False)


#: The portal tables this package maps, parents before children (the order of an import).
PORTAL_TABLES = tuple(
    model.__tablename__
    for model in (
        Deposition,
        Dataset,
        Run,
        TomogramVoxelSpacing,
        Annotation,
        AnnotationShape,
        AnnotationFile,
        AnnotationAuthor,
        AnnotationMethodLink,
    )
)

#: The annotation's child tables in the order a set-based delete must visit them.
ANNOTATION_CHILD_TABLES = (
    "annotation_file",
    "annotation_shape",
    "annotation_author",
    "annotation_method_link",
)
