"""Resurrections: a purged annotation's metadata back in S3 (by a Created event or found by a scan, in its
own spelling or another, or re-uploaded while the purge deleted it) is recorded once and shown by
``status`` with the command that re-ingests it. Real PostgreSQL, moto S3."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from sqlalchemy import text

from annotation_reconciler.rules.scope import Scope
from support.scenarios import quarantined_past_grace
from support.world import EVENT_TIME, World, created, removed


def test_a_reupload_during_the_purge_is_recorded_and_listed_with_the_reingest_command(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The purge listed the prefix (absent), then the metadata came back before its DELETE: S3 and the database
    cannot share a transaction, so the race is made visible: the Created event records a resurrection."""
    from click.testing import CliRunner

    from annotation_reconciler.cli.operate import status

    reconciler, key, victim = quarantined_past_grace(world)
    listed = reconciler.storage.list_many

    def list_then_reupload(*args: Any, **kwargs: Any) -> Any:
        answer = listed(*args, **kwargs)
        world.restore(key)
        return answer

    monkeypatch.setattr(reconciler.storage, "list_many", list_then_reupload)
    assert reconciler.purge().deleted == [victim]
    outcome = reconciler.apply_changes(created(key, at=EVENT_TIME + datetime.timedelta(hours=2)))
    assert outcome.resurrected == [(victim, key)]
    assert reconciler.apply_changes(created(key)).resurrected == []  # recorded once
    shown = CliRunner().invoke(status, ["--db-url", world.db_url], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    dataset = key.split("/")[0]
    assert f"purged annotation {victim} has its metadata back" in shown.output
    assert f"--dataset-id {dataset}" in shown.output and "--run-name" in shown.output


def test_a_purged_key_back_in_another_spelling_is_a_resurrection(world: World) -> None:
    reconciler, key, victim = quarantined_past_grace(world)
    assert reconciler.purge().deleted == [victim]
    folder, name = key.rsplit("/", 1)
    twin = f"{folder}/{name[0].upper()}{name[1:]}"
    world.restore(twin)
    assert reconciler.apply_changes(created(twin, at=EVENT_TIME + datetime.timedelta(hours=2))).resurrected == [
        (victim, key)
    ]


def test_a_scan_finds_a_recently_purged_key_back(world: World) -> None:
    reconciler, key, victim = quarantined_past_grace(world)
    assert reconciler.purge().deleted == [victim]
    world.restore(key)  # its Created event is lost
    scan = reconciler.scan_shard(Scope(dataset_id=world.portal.annotations[0].dataset_id))
    assert scan.resurrected == [(victim, key)]


@pytest.mark.parametrize("spelling", ["case", "percent-encoded"])
def test_a_scan_finds_a_recently_purged_key_back_in_another_spelling(world: World, spelling: str) -> None:
    reconciler, key, victim = quarantined_past_grace(world)
    assert reconciler.purge().deleted == [victim]
    folder, name = key.rsplit("/", 1)
    first = name[0].upper() if spelling == "case" else f"%{ord(name[0]):02X}"
    world.restore(f"{folder}/{first}{name[1:]}")  # its Created event is lost
    scan = reconciler.scan_shard(Scope(dataset_id=world.portal.annotations[0].dataset_id))
    assert scan.resurrected == [(victim, key)]


def _open_resurrections(world: World) -> list[tuple[int, str]]:
    with world.engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT annotation_id, metadata_key FROM annotation_reconciler.annotation_resurrection
                    WHERE resolved_at IS NULL ORDER BY annotation_id""")
        ).all()
    return [(r[0], r[1]) for r in rows]


def test_the_purge_closes_the_resurrection_of_an_annotation_back_in_the_portal_and_only_that_one(
    world: World,
) -> None:
    """Two purged annotations have their metadata back (two open resurrections); the portal's own importer then
    brings one of them back under a new id, with its stored path. The next purge closes that one's resurrection,
    with the purge's clock, once, and leaves the other open."""
    keys = world.portal.metadata_keys[:2]
    world.delete(*keys)
    reconciler = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="0.5")
    reconciler.apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    back, still_gone = sorted(world.ids[k] for k in keys)
    assert sorted(reconciler.purge().deleted) == [back, still_gone]
    world.restore(*keys)
    reconciler.apply_changes(created(*keys, at=world.clock.now))
    key_of = {world.ids[k]: k for k in keys}
    assert _open_resurrections(world) == [(back, key_of[back]), (still_gone, key_of[still_gone])]
    assert reconciler.purge().resurrections_closed == 0  # neither is in the portal yet

    with world.engine.begin() as conn:  # the portal's importer, not ours (``ingest`` closes it itself)
        conn.execute(
            text("""INSERT INTO annotation SELECT (jsonb_populate_record(NULL::annotation,
                      jsonb_set(snapshot -> 'annotation', '{id}', to_jsonb(999999)))).*
                    FROM annotation_reconciler_audit.deleted_annotation WHERE annotation_id = :a"""),
            {"a": back},
        )
    world.clock.advance(minutes=5)
    assert reconciler.purge().resurrections_closed == 1
    assert _open_resurrections(world) == [(still_gone, key_of[still_gone])]
    with world.engine.connect() as conn:
        closed_at = conn.execute(
            text("SELECT resolved_at FROM annotation_reconciler.annotation_resurrection WHERE annotation_id = :a"),
            {"a": back},
        ).scalar_one()
    assert closed_at == world.clock.now
    assert reconciler.purge().resurrections_closed == 0  # closed once


def test_a_shard_of_some_runs_looks_for_the_purged_keys_of_its_own_runs_only(world: World) -> None:
    """Two purged annotations of one dataset, in two runs, both have their metadata back (their Created events
    lost): a shard of one run records that run's resurrection only; the other run's shard records the other."""
    dataset = world.portal.dataset_ids[0]
    with world.engine.connect() as conn:
        run_id = dict(conn.execute(text("SELECT name, id FROM run WHERE dataset_id = :d"), {"d": dataset}).all())
    ours = next(a for a in world.portal.annotations if a.dataset_id == dataset and a.run_name == "TS_000")
    theirs = next(a for a in world.portal.annotations if a.dataset_id == dataset and a.run_name == "TS_001")
    keys = [ours.metadata_key, theirs.metadata_key]
    world.delete(*keys)
    reconciler = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="0.5")
    reconciler.apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    assert sorted(reconciler.purge().deleted) == sorted(world.ids[k] for k in keys)
    world.restore(*keys)
    first = reconciler.scan_shard(Scope(dataset_id=dataset, run_ids=(run_id["TS_000"],)))
    assert first.resurrected == [(world.ids[ours.metadata_key], ours.metadata_key)]
    second = reconciler.scan_shard(Scope(dataset_id=dataset, run_ids=(run_id["TS_001"],)))
    assert second.resurrected == [(world.ids[theirs.metadata_key], theirs.metadata_key)]


def test_a_scan_cut_by_its_budget_looks_for_a_purged_key_in_the_continuation_that_lists_its_prefix(
    world: World,
) -> None:
    """The purged key's prefix is the dataset's last: the cut scan does not list it and finds nothing; the
    continuation (``resume_after``) lists it and records the resurrection."""
    key = world.portal.annotations[-1].metadata_key  # in the last prefix of dataset 10002
    world.delete(key)
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(key))
    world.clock.advance(hours=2)
    assert reconciler.purge().deleted == [world.ids[key]]
    world.restore(key)  # its Created event is lost
    budget = iter([100.0, 100.0, 1.0])
    first = reconciler.scan_shard(Scope(dataset_id=10002), remaining_seconds=lambda: next(budget, 1.0))
    assert not first.complete and first.resurrected == []
    second = reconciler.scan_shard(Scope(dataset_id=10002), resume_after=first.resume_after)
    assert second.complete and second.resurrected == [(world.ids[key], key)]
