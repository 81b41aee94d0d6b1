"""Applying a batch of S3 events (``Reconciler.apply_changes``): a Removed event of metadata quarantines and
deletes nothing, a Created event releases, keys of other buckets and kinds are ignored and counted (real
PostgreSQL, moto S3)."""

from __future__ import annotations

import datetime

from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange
from support.world import BUCKET, World, created, removed


def test_removal_event_quarantines_without_deleting(world: World) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    result = world.reconciler().apply_changes(removed(key))
    assert result.quarantined == [world.ids[key]]
    assert world.ids[key] in world.annotation_ids()
    assert world.ledger() == {world.ids[key]: "quarantined"}


def test_reuploaded_key_is_released_not_deleted(world: World) -> None:
    key = world.portal.metadata_keys[1]
    world.delete(key)
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(key))
    world.restore(key)
    assert reconciler.apply_changes(created(key)).released == [world.ids[key]]
    world.clock.advance(hours=2)
    assert reconciler.purge().claimed == 0
    assert world.ids[key] in world.annotation_ids()


def test_keys_of_other_buckets_and_kinds_are_ignored_and_counted(world: World) -> None:
    t = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    changes = [
        ObjectChange("another-bucket", world.portal.metadata_keys[0], ChangeKind.REMOVED, "s3", t, None),
        ObjectChange(BUCKET, "10001/TS_000/run_metadata.json", ChangeKind.REMOVED, "s3", t, None),
        ObjectChange(BUCKET, "10001/../10002/x/Annotations/100/a-1.json", ChangeKind.REMOVED, "s3", t, None),
    ]
    result = world.reconciler().apply_changes(changes)
    assert dict(result.ignored) == {"other_bucket": 1, "other_kind": 1, "unsafe_key": 1}
    assert world.ledger() == {}
