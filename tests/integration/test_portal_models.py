"""Our models against a portal schema made by plain DDL: every mapped column round-trips."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Engine, Float, Integer, String, inspect, select, text
from sqlalchemy.orm import Session

from annotation_reconciler.local.synthetic import PortalSpec, build_portal
from annotation_reconciler.local.synthetic_rows import write_rows
from annotation_reconciler.portal import models as m

MODELS: list[type[m.PortalBase]] = [
    m.Alignment,
    m.Deposition,
    m.Dataset,
    m.Run,
    m.TomogramVoxelSpacing,
    m.Annotation,
    m.AnnotationShape,
    m.AnnotationFile,
    m.AnnotationAuthor,
    m.AnnotationMethodLink,
]


ENUM_VALUES = {
    "method_type": "simulated",
    "shape_type": "InstanceSegmentationMask",
    "source": "portal_standard",
    "link_type": "models_weights",
}


def _value(column: Any, salt: int) -> Any:
    if column.name in ENUM_VALUES:
        return ENUM_VALUES[column.name]
    kind = column.type
    if isinstance(kind, Boolean):
        return salt % 2 == 0
    if isinstance(kind, DateTime):
        return datetime.datetime(2024, 3, 1 + salt % 27, 12, 30, tzinfo=datetime.UTC)
    if isinstance(kind, Float):
        return 0.25 + salt
    if isinstance(kind, Integer):
        return 1000 + salt
    if isinstance(kind, String):
        return f"{column.name}-é-{salt}"
    raise AssertionError(f"no test value for {column}")


def test_every_mapped_column_exists_in_the_ddl_schema(engine: Engine) -> None:
    inspector = inspect(engine)
    for model in MODELS:
        table = model.__table__
        ddl_columns = {c["name"] for c in inspector.get_columns(table.name)}
        mapped = {c.name for c in table.columns}
        assert mapped <= ddl_columns, f"{table.name}: {mapped - ddl_columns} missing from the portal DDL"


def test_foreign_keys_have_no_database_cascade(engine: Engine) -> None:
    with engine.connect() as conn:
        cascading = conn.execute(
            text("SELECT conname FROM pg_constraint WHERE contype = 'f' AND confdeltype = 'c'")
        ).all()
    assert cascading == []


def test_every_column_round_trips(engine: Engine) -> None:
    """Write each model with a value in every column (FKs pointing at real parents) and read it back."""
    written: dict[type[m.PortalBase], dict[str, Any]] = {}
    parents = {
        "alignment": None,
        "deposition": None,
        "dataset": "deposition",
        "run": "dataset",
        "tomogram_voxel_spacing": "run",
        "annotation": "run",
        "annotation_shape": "annotation",
        "annotation_file": "annotation_shape",
        "annotation_author": "annotation",
        "annotation_method_link": "annotation",
    }
    ids: dict[str, int] = {}
    with Session(engine) as session:
        for salt, model in enumerate(MODELS):
            table = model.__table__
            values: dict[str, Any] = {}
            for column in table.columns:
                if column.primary_key:
                    continue
                fk = next(iter(column.foreign_keys), None)
                values[column.name] = ids[fk.column.table.name] if fk is not None else _value(column, salt)
            row = model(**values)
            session.add(row)
            session.flush()
            ids[table.name] = row.id  # type: ignore[attr-defined]
            written[model] = values
            assert parents[table.name] is None or parents[table.name] in ids
        session.commit()
    with Session(engine) as session:
        for model, values in written.items():
            row = session.scalars(select(model).where(model.id == ids[model.__tablename__])).one()  # type: ignore[attr-defined]
            for name, value in values.items():
                assert getattr(row, name) == value, f"{model.__tablename__}.{name}"


def test_extra_columns_in_the_database_do_not_break_reads(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE annotation ADD COLUMN future_column TEXT NOT NULL DEFAULT 'x'"))
        conn.execute(text("ALTER TABLE run ADD COLUMN tilt_series_count INTEGER"))
    portal = build_portal(PortalSpec(datasets=1, runs_per_dataset=2, annotations_per_voxel_spacing=2))
    ids = write_rows(engine, portal)
    with Session(engine) as session:
        rows = session.scalars(select(m.Annotation).order_by(m.Annotation.id)).all()
        assert [r.id for r in rows] == sorted(ids.values())
        copy = {c.name: getattr(rows[0], c.name) for c in m.Annotation.__table__.columns if c.name != "id"}
        session.add(m.Annotation(**{**copy, "s3_metadata_path": "s3://b/1/x.json"}))
        session.commit()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM annotation WHERE future_column = 'x'")).scalar() == 5
