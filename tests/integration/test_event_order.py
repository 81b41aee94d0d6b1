"""Evidence in time order: a replayed or reordered batch changes nothing (the later event wins), and the
purge's listing is evidence only for what happened before it (issue 18). Real PostgreSQL, moto S3."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
from sqlalchemy import text

from annotation_reconciler.ledger import event_order
from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange
from annotation_reconciler.rules.ordering import RowState, Stamp
from support.world import BUCKET, EVENT_TIME, World, created, removed


def test_replayed_and_reordered_batches_change_nothing(world: World) -> None:
    key = world.portal.metadata_keys[3]
    world.delete(key)
    reconciler = world.reconciler()
    batch = removed(key)
    reconciler.apply_changes(batch)
    first = world.ledger()
    assert reconciler.apply_changes(batch).quarantined == []
    assert world.ledger() == first
    # a delete then a re-create, delivered in reverse order within one batch: the later event wins
    other = world.portal.metadata_keys[4]
    result = reconciler.apply_changes(created(other, at=EVENT_TIME + datetime.timedelta(seconds=5)) + removed(other))
    assert result.quarantined == [] and world.ids[other] not in world.ledger()


def test_a_purge_does_not_release_on_a_listing_older_than_the_rows_last_event(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 18's rule at the purge: its listing is evidence only for what happened before it. The metadata
    is re-uploaded (its Created lost), listed present by the purge, then removed again with its event
    applied before the purge settles: the row is not released on the old listing; the next purge deletes it."""
    key = world.portal.metadata_keys[0]
    victim = world.ids[key]
    world.delete(key)
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(key, at=world.clock()))
    world.clock.advance(hours=2)
    world.restore(key)
    listed = reconciler.storage.list_many

    def list_then_remove_again(*args: Any, **kwargs: Any) -> Any:
        answer = listed(*args, **kwargs)
        world.delete(key)
        world.reconciler().apply_changes(removed(key, at=world.clock() + datetime.timedelta(minutes=1)))
        return answer

    monkeypatch.setattr(reconciler.storage, "list_many", list_then_remove_again)
    caplog.set_level(logging.INFO, logger="annotation_reconciler.service.purge")
    result = reconciler.purge()
    assert result.released == [] and result.deleted == [] and world.ledger()[victim] == "quarantined"
    assert f"purge leaves {victim} to the next purge: stamped after its listing" in caplog.messages
    monkeypatch.undo()
    world.clock.advance(minutes=2)
    assert reconciler.purge().deleted == [victim]


def test_a_rows_newest_ledger_state_reads_back_exactly_as_its_events_left_it(world: World) -> None:
    """``event_order.newest_rows`` is what ``may_quarantine`` and the purge's "stamped after its listing" check
    read: each annotation's newest row, its exact status, and the time, sequencer and end of the event that set
    it (an S3 notification spans a millisecond, an EventBridge event a second); none for a row never seen."""
    by_s3, by_eventbridge, never = (world.portal.metadata_keys[i] for i in (0, 3, 6))
    world.delete(by_s3, by_eventbridge)
    reconciler = world.reconciler()
    first, later = EVENT_TIME, EVENT_TIME + datetime.timedelta(minutes=7)
    reconciler.apply_changes([ObjectChange(BUCKET, by_s3, ChangeKind.REMOVED, "s3", first, "00A1B2")])
    reconciler.apply_changes([ObjectChange(BUCKET, by_s3, ChangeKind.CREATED, "s3", later, "00A1C3")])
    again = later + datetime.timedelta(minutes=3)
    reconciler.apply_changes([ObjectChange(BUCKET, by_s3, ChangeKind.REMOVED, "s3", again, "00A1D4")])
    reconciler.apply_changes([ObjectChange(BUCKET, by_eventbridge, ChangeKind.REMOVED, "eventbridge", later, None)])
    ids = [world.ids[k] for k in (by_s3, by_eventbridge, never)]
    with world.engine.connect() as conn:
        rows = event_order.newest_rows(conn, [*ids, ids[0]])
        assert event_order.newest_rows(conn, []) == {}
    assert rows == {
        ids[0]: RowState("quarantined", Stamp(again, "00A1D4", again + datetime.timedelta(milliseconds=1))),
        ids[1]: RowState("quarantined", Stamp(later, None, later + datetime.timedelta(seconds=1))),
    }
    with world.engine.connect() as conn:  # the first removal's row was released by the re-upload
        statuses = conn.execute(
            text("""SELECT status FROM annotation_reconciler.annotation_quarantine
                    WHERE annotation_id = :a ORDER BY id"""),
            {"a": ids[0]},
        ).scalars()
        assert list(statuses) == ["released", "quarantined"]
