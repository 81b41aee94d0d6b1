"""The baseline: the spec's Phase 1 algorithm, literally, on ORM classes with cascades.

The project's models (``portal.models``) have no relationships on purpose; the spec's script relies
on ``cascade="all, delete-orphan"``. So the baseline maps the *same tables* (the portal models'
``Table`` objects, columns and foreign keys included) to its own classes in a separate registry,
with the relationships the spec describes::

    Annotation.annotation_shapes  (cascade="all, delete-orphan")
        AnnotationShape.annotation_files  (cascade="all, delete-orphan")
    Annotation.authors, Annotation.method_links  (cascade="all, delete-orphan")

:func:`detect_stale` is Phase 1 steps 1-3 (load the scope's annotations through the ORM, one HEAD
per annotation); :func:`delete_cascade` is step 5 (``session.delete`` per annotation, one commit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from botocore.exceptions import ClientError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, registry, relationship

from annotation_reconciler.portal.models import PortalBase

_tables = PortalBase.metadata.tables
mapper_registry = registry()


class Run:
    id: int
    dataset_id: int


class Annotation:
    id: int
    run_id: int | None
    s3_metadata_path: str
    annotation_shapes: list[AnnotationShape]
    authors: list[Any]
    method_links: list[Any]


class AnnotationShape:
    id: int
    annotation_files: list[Any]


class AnnotationFile:
    id: int


class AnnotationAuthor:
    id: int


class AnnotationMethodLink:
    id: int


mapper_registry.map_imperatively(Run, _tables["run"])
mapper_registry.map_imperatively(AnnotationFile, _tables["annotation_file"])
mapper_registry.map_imperatively(
    AnnotationShape,
    _tables["annotation_shape"],
    properties={"annotation_files": relationship(AnnotationFile, cascade="all, delete-orphan")},
)
mapper_registry.map_imperatively(AnnotationAuthor, _tables["annotation_author"])
mapper_registry.map_imperatively(AnnotationMethodLink, _tables["annotation_method_link"])
mapper_registry.map_imperatively(
    Annotation,
    _tables["annotation"],
    properties={
        "annotation_shapes": relationship(AnnotationShape, cascade="all, delete-orphan"),
        "authors": relationship(AnnotationAuthor, cascade="all, delete-orphan"),
        "method_links": relationship(AnnotationMethodLink, cascade="all, delete-orphan"),
    },
)


def to_key(stored_path: str, bucket: str) -> str:
    """Phase 1 step 2: "convert S3 path format if needed (handle both s3:// and relative paths)"."""
    if stored_path.startswith("s3://"):
        return stored_path[len("s3://") :].partition("/")[2]
    if stored_path.startswith(bucket + "/"):
        return stored_path[len(bucket) + 1 :]
    return stored_path.lstrip("/")


def dataset_ids(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return list(session.scalars(select(Run.dataset_id).distinct().order_by(Run.dataset_id)))


def detect_stale(engine: Engine, client: Any, bucket: str, datasets: Iterable[int]) -> list[int]:
    """Phase 1, steps 1-3, one dataset scope after another: ORM load, one HEAD per annotation.

    Returns the ids of the annotations whose metadata HEAD answered 404; any other error stops the
    run (the spec's script has no notion of "unknown").
    """
    stale: list[int] = []
    for dataset_id in datasets:
        with Session(engine) as session:
            query = (
                select(Annotation)
                .join(Run, Run.id == Annotation.run_id)
                .where(Run.dataset_id == dataset_id)
                .order_by(Annotation.id)
            )
            for annotation in session.scalars(query):
                key = to_key(annotation.s3_metadata_path, bucket)
                try:
                    client.head_object(Bucket=bucket, Key=key)
                except ClientError as exc:
                    if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                        stale.append(annotation.id)
                    else:
                        raise
    return stale


def delete_cascade(engine: Engine, annotation_ids: Sequence[int]) -> int:
    """Phase 1 step 5: load the stale annotations, ``session.delete`` each (ORM cascades), commit once."""
    with Session(engine) as session:
        annotations = session.scalars(select(Annotation).where(Annotation.id.in_(list(annotation_ids)))).all()
        for annotation in annotations:
            session.delete(annotation)
        session.commit()
    return len(annotations)
