"""Resurrections: a purged annotation's metadata back in S3 (by a Created event or found by a scan, in its
own spelling or another, or re-uploaded while the purge deleted it) is recorded once and shown by
``status`` with the command that re-ingests it. Real PostgreSQL, moto S3."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from annotation_reconciler.rules.scope import Scope
from support.scenarios import quarantined_past_grace
from support.world import EVENT_TIME, World, created


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
