"""ledger/quarantines: opening a ledger row again under a new stored path (real PostgreSQL)."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import Engine, text

from annotation_reconciler.ledger import event_order, quarantines
from annotation_reconciler.ledger.models import Source, Status
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.lifecycle import AnnotationRef
from annotation_reconciler.rules.ordering import Stamp
from support.world import World

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
GRACE = datetime.timedelta(hours=1)


@pytest.fixture
def world_spec() -> PortalSpec:
    return PortalSpec(datasets=1, runs_per_dataset=1, annotations_per_voxel_spacing=1)


def open_row(world: World, path: str, status: Status, source: Source, at: datetime.datetime) -> list[int]:
    annotation_id = next(iter(world.annotation_ids()))
    ref = AnnotationRef(annotation_id, path, dataset_id=world.portal.dataset_ids[0])
    with world.engine.begin() as conn:
        return quarantines.quarantine(
            conn, [(ref, path)], quarantines.Opening(source, f"{status} by {source}", at, GRACE, status)
        )


def ledger_row(world: World) -> tuple[str, str, str, datetime.datetime]:
    with world.engine.connect() as conn:
        query = "SELECT status, source, s3_metadata_path, purge_after FROM annotation_reconciler.annotation_quarantine"
        row = conn.execute(text(query)).one()
    return row.status, row.source, row.s3_metadata_path, row.purge_after


@pytest.mark.parametrize(
    ("first", "second"),
    [(Status.QUARANTINED, Status.HELD), (Status.HELD, Status.QUARANTINED)],
)
def test_a_row_opened_again_under_a_new_path_takes_the_new_decision_whole(
    world: World, first: Status, second: Status
) -> None:
    """The new decision replaces the old one entirely: a hold that a later quarantine inherited (or the reverse)
    would hide a guard's decision from `status` and the MassDeletionGuard alarm, or keep a row held that nothing
    holds."""
    assert open_row(world, "a/old-1.0.json", first, Source.EVENT, T0)
    later = T0 + datetime.timedelta(hours=5)
    assert open_row(world, "a/new-1.0.json", second, Source.IMPORTER, later)
    assert ledger_row(world) == (second.value, Source.IMPORTER.value, "a/new-1.0.json", later + GRACE)


def test_a_row_opened_again_under_the_same_path_keeps_its_decision_and_clock(world: World) -> None:
    assert open_row(world, "a/same-1.0.json", Status.QUARANTINED, Source.EVENT, T0)
    assert open_row(world, "a/same-1.0.json", Status.HELD, Source.IMPORTER, T0 + GRACE) == []
    assert ledger_row(world) == (Status.QUARANTINED.value, Source.EVENT.value, "a/same-1.0.json", T0 + GRACE)


def test_two_stamps_of_one_annotation_count_as_the_newer(world: World) -> None:
    """Two changes of one annotation in a call (two spellings of its key): the newer stamp decides."""
    open_row(world, "a/x-1.0.json", Status.QUARANTINED, Source.EVENT, T0)
    annotation_id = next(iter(world.annotation_ids()))
    with world.engine.begin() as conn:
        event_order.stamp_open_rows(conn, [(annotation_id, Stamp(T0))])
        older, newer_ = Stamp(T0 - datetime.timedelta(minutes=1)), Stamp(T0 + datetime.timedelta(minutes=1))
        released = event_order.release_older(
            conn, [(annotation_id, newer_), (annotation_id, older)], now=T0, resolution="back"
        )
    assert released == [annotation_id]
    with world.engine.connect() as conn:
        stamp = conn.execute(text("SELECT event_time FROM annotation_reconciler.annotation_quarantine")).scalar_one()
    assert stamp == newer_.time


def test_a_text_array_parameter_reaches_postgresql_as_the_same_list(engine: Engine) -> None:
    """db.text_array (the events path's fast array parameters) against PostgreSQL's own array parser."""
    from annotation_reconciler.db import text_array

    values = ['a "b"', "c\\d", None, "", "{x,y}", "NULL", "é 1+2%2B", "x\\", '"', " lead", "tab\tin"]
    with engine.connect() as conn:
        back = conn.execute(text("SELECT CAST(:p AS text[])"), {"p": text_array(values)}).scalar_one()
        empty = conn.execute(text("SELECT cardinality(CAST(:p AS text[]))"), {"p": text_array([])}).scalar_one()
    assert back == values and empty == 0
