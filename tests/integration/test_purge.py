"""The purge: it waits out the grace period (due exactly at ``purge_after``), rechecks S3 and releases a key
that is back, deletes the annotation with its children and audits it, goes in batches within its time
budget and sums them, deletes nothing in a dry run, touches no other row (a twin file name in another voxel
spacing, an annotation someone else deleted). Real PostgreSQL, moto S3."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
from sqlalchemy import Engine, text

from annotation_reconciler.ledger import purge_claims
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.service.context import SAFETY_MARGIN_S
from support.world import BUCKET, SNAPSHOT, World, make_world, removed


def test_purge_waits_for_the_grace_period_then_deletes_everything(world: World) -> None:
    key = world.portal.metadata_keys[0]
    victim = world.ids[key]
    world.delete(key)
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(key))
    world.clock.advance(minutes=59)
    assert reconciler.purge().deleted == []
    assert victim in world.annotation_ids()
    world.clock.advance(minutes=2)
    result = reconciler.purge()
    assert result.deleted == [victim]
    assert world.annotation_ids() == set(world.ids.values()) - {victim}
    assert world.children_of({victim}) == 0 and world.orphans() == 0
    assert result.rows_deleted["annotation_file"] == 3
    with world.engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT status, source, {SNAPSHOT}, resolved_at FROM annotation_reconciler.annotation_quarantine q")  # noqa: S608
        ).one()
    assert (row.status, row.source, row.resolved_at) == ("purged", "event", world.clock())  # the purge's clock
    assert row.snapshot["annotation"]["id"] == victim and len(row.snapshot["annotation_author"]) == 2


def test_purge_recheck_releases_a_key_back_without_an_event(world: World) -> None:
    key = world.portal.metadata_keys[2]
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(key))  # the event says removed, but the object is there
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.released == [world.ids[key]] and result.deleted == []
    assert world.ledger()[world.ids[key]] == "released"


def test_the_purge_is_due_exactly_at_purge_after_and_not_a_microsecond_before(world: World) -> None:
    """The grace period ends at ``purge_after`` itself (``purge_after <= now``): a purge one microsecond
    earlier deletes nothing, a purge at that instant deletes the row."""
    key = world.portal.metadata_keys[0]
    victim = world.ids[key]
    world.delete(key)
    reconciler = world.reconciler()
    quarantined_at = world.clock()
    reconciler.apply_changes(removed(key))
    with world.engine.connect() as conn:
        purge_after = conn.execute(
            text("SELECT purge_after FROM annotation_reconciler.annotation_quarantine WHERE annotation_id = :id"),
            {"id": victim},
        ).scalar_one()
    assert purge_after == quarantined_at + reconciler.settings.grace_period
    world.clock.now = purge_after - datetime.timedelta(microseconds=1)
    assert reconciler.purge().claimed == 0 and victim in world.annotation_ids()
    world.clock.now = purge_after
    assert reconciler.purge().deleted == [victim]
    assert victim not in world.annotation_ids() and world.ledger()[victim] == "purged"


def test_dry_run_deletes_nothing(world: World) -> None:
    keys = world.portal.metadata_keys[:2]
    world.delete(*keys)
    reconciler = world.reconciler(RECONCILER_DRY_RUN="true")
    reconciler.apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.dry_run and sorted(result.would_delete) == sorted(world.ids[k] for k in keys)
    assert result.deleted == []
    assert world.annotation_ids() == set(world.ids.values())
    assert set(world.ledger().values()) == {"quarantined"}


def test_the_purge_goes_in_batches_of_its_size_and_stops_at_the_safety_margin(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by make mutate: batches of ``purge_batch_size`` (each claimed, listed and settled on its own), the
    claimed count summed over them, and the time budget: at exactly SAFETY_MARGIN_S left a batch still starts,
    below it none does."""
    keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == world.portal.dataset_ids[0]][:5]
    world.delete(*keys)
    reconciler = world.reconciler(purge_batch_size=2, RECONCILER_MAX_PURGE_FRACTION="1")
    reconciler.apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    assert reconciler.purge(remaining_seconds=lambda: SAFETY_MARGIN_S - 0.001).claimed == 0
    sizes: list[int] = []
    lock = purge_claims.lock_claims

    def counted(conn: Any, claims: Any) -> Any:
        sizes.append(len(claims))
        return lock(conn, claims)

    monkeypatch.setattr(purge_claims, "lock_claims", counted)
    result = reconciler.purge(remaining_seconds=lambda: SAFETY_MARGIN_S)
    assert sizes == [2, 2, 1] and result.claimed == 5
    assert sorted(result.deleted) == sorted(world.ids[k] for k in keys)


@pytest.mark.parametrize("outcome", ["would_delete", "released", "unknown"])
def test_the_purge_result_sums_every_batch(world: World, caplog: pytest.LogCaptureFixture, outcome: str) -> None:
    """Found by make mutate: with one row per batch, each outcome of the result lists the rows of every batch (dry
    run: would delete; metadata back: released; another prefix setting: unknown), and a dry run logs its ids."""
    keys = world.portal.metadata_keys[:2]
    ids = sorted(world.ids[k] for k in keys)
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    env = {"RECONCILER_MAX_PURGE_FRACTION": "1"}
    if outcome == "would_delete":
        env["RECONCILER_DRY_RUN"] = "true"
    elif outcome == "released":
        world.restore(*keys)
    else:
        env["RECONCILER_S3_PREFIX"] = f"s3://{BUCKET}/elsewhere/"
    reconciler = world.reconciler(purge_batch_size=1, **env)
    caplog.set_level(logging.WARNING, logger="annotation_reconciler.service.purge")
    result = reconciler.purge()
    listed = [u.ref.id for u in result.unknown] if outcome == "unknown" else getattr(result, outcome)
    assert sorted(listed) == ids and result.claimed == 2 and result.deleted == []
    dry = [m for m in caplog.messages if m.startswith("dry run")]
    expected = [f"dry run: would purge 1 annotation ({i})" for i in ids] if outcome == "would_delete" else []
    assert sorted(dry) == expected


def test_other_voxel_spacing_with_the_same_file_name_is_untouched(engine: Engine, s3: Any, db_url: str) -> None:
    w = make_world(
        engine,
        s3,
        db_url,
        PortalSpec(datasets=1, runs_per_dataset=1, voxel_spacings_per_run=2, annotations_per_voxel_spacing=2),
    )
    first, twin = w.portal.annotations[0], w.portal.annotations[2]
    assert first.metadata_key.rsplit("/", 1)[1] == twin.metadata_key.rsplit("/", 1)[1]
    w.delete(first.metadata_key)
    reconciler = w.reconciler(RECONCILER_MAX_PURGE_FRACTION="1")
    reconciler.apply_changes(removed(first.metadata_key))
    w.clock.advance(hours=2)
    assert reconciler.purge().deleted == [w.ids[first.metadata_key]]
    assert w.ids[twin.metadata_key] in w.annotation_ids()


def test_a_quarantined_annotation_deleted_by_someone_else_is_released_by_the_purge(world: World) -> None:
    """Found by make mutate: no test purged a ledger row whose annotation is gone already (the portal's own
    tooling deleted it). The purge closes the row, deletes nothing and goes on with the rest of its batch."""
    keys = world.portal.metadata_keys[:2]
    world.delete(*keys)
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(*keys))
    gone, other = (world.ids[k] for k in keys)
    with world.engine.begin() as conn:
        conn.execute(text("DELETE FROM annotation_method_link WHERE annotation_id = :id"), {"id": gone})
        conn.execute(text("DELETE FROM annotation_author WHERE annotation_id = :id"), {"id": gone})
        conn.execute(
            text("""DELETE FROM annotation_file f USING annotation_shape s
                    WHERE f.annotation_shape_id = s.id AND s.annotation_id = :id"""),
            {"id": gone},
        )
        conn.execute(text("DELETE FROM annotation_shape WHERE annotation_id = :id"), {"id": gone})
        conn.execute(text("DELETE FROM annotation WHERE id = :id"), {"id": gone})
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.released == [gone] and result.deleted == [other]
    with world.engine.connect() as conn:
        resolution = conn.execute(
            text("SELECT resolution FROM annotation_reconciler.annotation_quarantine WHERE annotation_id = :id"),
            {"id": gone},
        ).scalar_one()
    assert resolution == "the annotation row no longer exists"
