"""Deletion safety, round 3 (issue 25), each rule with the test that tries to break it, on the real PostgreSQL
and moto: the guard counts the dataset, not the verdicts; a failed operator command changes nothing."""

from __future__ import annotations

import datetime
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from annotation_reconciler.cleanup_stale_annotations import cleanup_stale_annotations
from annotation_reconciler.cli.main import cli
from annotation_reconciler.lifecycle import metadata_folder
from annotation_reconciler.scope import Scope
from support.faults import inject_at, record_backoff
from support.world import BUCKET, World, removed


def ledger_dump(engine: Engine) -> list[tuple[Any, ...]]:
    """Every ledger row, every column, in id order: compare before and after to prove a command wrote nothing."""
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(text("SELECT * FROM annotation_reconciler.annotation_quarantine ORDER BY id"))
        ]


def operator(world: World, *args: str) -> Any:
    return CliRunner().invoke(cli, [*args, "--db-url", world.db_url])


# --- the guard counts the dataset, not the verdicts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("gone_runs", "throttled_runs"),
    [
        pytest.param(("TS_000", "TS_001", "TS_002"), ("TS_001", "TS_002"), id="dataset-vanished-2-of-3-throttled"),
        pytest.param(("TS_000", "TS_001"), ("TS_001",), id="two-runs-gone-1-throttled"),
        pytest.param(("TS_000", "TS_001", "TS_002"), ("TS_000",), id="dataset-vanished-1-of-3-throttled"),
    ],
)
def test_rows_s3_could_not_judge_still_count_for_the_guard(
    world: World, monkeypatch: pytest.MonkeyPatch, gone_runs: tuple[str, ...], throttled_runs: tuple[str, ...]
) -> None:
    """Runs of dataset 10001 vanish (every object); their annotations are quarantined. At the purge some of their
    prefixes answer SlowDown: those rows are unknown, but they still count as going, so the guard sees the whole
    loss (more than half of the dataset) and holds the rows it could prove absent instead of deleting them."""
    record_backoff(monkeypatch)
    gone = [a for a in world.portal.annotations if a.dataset_id == 10001 and a.run_name in gone_runs]
    world.delete(*[k for k in world.portal.all_keys() if k.split("/")[1] in gone_runs and k.startswith("10001/")])
    reconciler = world.reconciler()
    assert sorted(reconciler.apply_changes(removed(*[a.metadata_key for a in gone])).quarantined) == sorted(
        world.ids[a.metadata_key] for a in gone
    )
    world.clock.advance(hours=2)
    client = boto3.client("s3", region_name="us-west-2")
    throttled = {metadata_folder(a.metadata_key) for a in gone if a.run_name in throttled_runs}
    inject_at(client, "ListObjectsV2", *throttled, status=503, code="SlowDown")
    result = world.reconciler(s3=client, RECONCILER_MAX_PURGE_FRACTION="0.5").purge()
    ids = {world.ids[a.metadata_key] for a in gone}
    assert result.deleted == [] and ids <= world.annotation_ids()
    assert len(result.unknown) == 4 * len(throttled_runs)
    assert len(result.held) == 4 * (len(gone_runs) - len(throttled_runs))
    assert result.held_datasets == {10001: (len(ids), 12)}


# --- a failed operator command changes nothing; a repeated release keeps the release -------------------------------


def test_a_second_release_keeps_the_first(world: World) -> None:
    """Issue 25 (5): `release` twice. The second finds no open row; it must not cancel the first one's exemption:
    the next scan leaves the annotation alone and no purge deletes it."""
    key = world.portal.metadata_keys[0]
    aid = world.ids[key]
    world.delete(key)
    r = world.reconciler()
    assert r.apply_changes(removed(key)).quarantined == [aid]
    first = operator(world, "release", "--annotation-id", str(aid), "--by", "alice")
    assert first.exit_code == 0, first.output
    before = ledger_dump(world.engine)
    again = operator(world, "release", "--annotation-id", str(aid), "--by", "bob")
    assert again.exit_code == 0, again.output
    assert "already released by alice" in again.output
    assert ledger_dump(world.engine) == before
    world.clock.advance(minutes=5)
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    world.clock.advance(hours=2)
    assert r.purge().deleted == [] and aid in world.annotation_ids()


def test_a_release_through_the_api_twice_keeps_the_release(world: World) -> None:
    key = world.portal.metadata_keys[3]
    aid = world.ids[key]
    world.delete(key)
    r = world.reconciler()
    r.apply_changes(removed(key))
    assert r.release(aid, by="alice")
    assert r.release(aid, by="alice")  # the release is kept: asking again is not a failure
    world.clock.advance(minutes=5)
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    world.clock.advance(hours=2)
    assert r.purge().claimed == 0 and aid in world.annotation_ids()


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("release", "--annotation-id", "{other}"), id="release-never-quarantined"),
        pytest.param(("release", "--annotation-id", "999999"), id="release-no-such-annotation"),
        pytest.param(("release", "--annotation-id", "{settled}"), id="release-a-row-the-scan-released"),
        pytest.param(("release", "--clear", "--annotation-id", "{other}"), id="clear-without-release"),
        pytest.param(("release", "--clear", "--annotation-id", "{settled}"), id="clear-a-row-the-scan-released"),
    ],
)
def test_a_failed_operator_command_changes_nothing(world: World, command: tuple[str, ...]) -> None:
    """Issue 25 (5): a command that fails (exit code 1) leaves every ledger row as it was, the exemption of an
    earlier release included."""
    released_key, settled_key = world.portal.metadata_keys[0], world.portal.metadata_keys[1]
    world.delete(released_key, settled_key)
    r = world.reconciler()
    r.apply_changes(removed(released_key, settled_key))
    assert r.release(world.ids[released_key], by="alice")
    world.restore(settled_key)
    world.clock.advance(minutes=5)
    r.scan_shard(Scope(dataset_id=10001))  # the settled row's metadata is back: released by the scan
    assert world.ledger()[world.ids[settled_key]] == "released"
    ids = {"other": str(world.ids[world.portal.metadata_keys[2]]), "settled": str(world.ids[settled_key])}
    before = ledger_dump(world.engine)
    out = operator(world, *(part.format(**ids) for part in command))
    assert out.exit_code == 1, out.output
    assert ledger_dump(world.engine) == before


# --- every command takes the same settings: RECONCILER_DRY_RUN, overridden by a flag that says so ---------------


def stale_in_ts_000(world: World) -> int:
    """An annotation of 10001/TS_000 whose metadata is gone from S3 (the importer's sibling cleanup would delete it)."""
    gone = world.portal.annotations[0]
    assert (gone.dataset_id, gone.run_name) == (10001, "TS_000")
    world.delete(gone.metadata_key)
    return world.ids[gone.metadata_key]


def run_cli(world: World, command: Any, args: list[str], **env: str) -> Any:
    base = {"RECONCILER_DB_URL": world.db_url, "RECONCILER_MAX_PURGE_FRACTION": "0.5", "COLUMNS": "200"}
    return CliRunner().invoke(command, args, env={**base, **env})


INGEST = ["ingest", "--bucket", BUCKET, "--dataset-id", "10001", "--run-name", "TS_000"]
CLEANUP = ["--s3-bucket", BUCKET, "--run-id", "{run}", "--yes"]


@pytest.mark.parametrize(
    ("env", "flags", "deletes", "decided_by"),
    [
        pytest.param("true", [], False, "RECONCILER_DRY_RUN=true", id="env-true"),
        pytest.param("1", [], False, "RECONCILER_DRY_RUN=1", id="env-1"),
        pytest.param("on", [], False, "RECONCILER_DRY_RUN=on", id="env-on"),
        pytest.param("true", ["--no-dry-run"], True, "--no-dry-run", id="env-true-flag-no-dry-run"),
        pytest.param("false", ["--dry-run"], False, "--dry-run", id="env-false-flag-dry-run"),
        pytest.param("false", [], True, "RECONCILER_DRY_RUN=false", id="env-false"),
    ],
)
def test_ingest_honours_reconciler_dry_run_and_a_flag_overrides_it(
    world: World, env: str, flags: list[str], deletes: bool, decided_by: str
) -> None:
    """Issue 25 (4): with RECONCILER_DRY_RUN=true exported, `ingest` deletes (and writes) nothing; a flag on the
    command line overrides the variable, and the output names the one that decided."""
    aid = stale_in_ts_000(world)
    out = run_cli(world, cli, [*INGEST, *flags], RECONCILER_DRY_RUN=env)
    assert out.exit_code == 0, out.output
    assert (aid not in world.annotation_ids()) is deletes
    assert f"decided by {decided_by}" in out.output
    assert ("dry run: nothing" in out.output) is not deletes


@pytest.mark.parametrize(
    ("env", "flags", "deletes", "decided_by"),
    [
        pytest.param("yes", [], False, "RECONCILER_DRY_RUN=yes", id="env-yes"),
        pytest.param("false", [], True, "RECONCILER_DRY_RUN=false", id="env-false"),
        pytest.param("false", ["--dry-run"], False, "--dry-run", id="env-false-flag-dry-run"),
        pytest.param("true", ["--no-dry-run"], True, "--no-dry-run", id="env-true-flag-no-dry-run"),
    ],
)
def test_the_cleanup_command_honours_reconciler_dry_run(
    world: World, env: str, flags: list[str], deletes: bool, decided_by: str
) -> None:
    aid = stale_in_ts_000(world)
    with world.engine.connect() as conn:
        run = conn.execute(text("SELECT run_id FROM annotation WHERE id = :id"), {"id": aid}).scalar_one()
    args = [a.format(run=run) for a in CLEANUP] + ["--db-uri", world.db_url, *flags]
    out = run_cli(world, cleanup_stale_annotations, args, RECONCILER_DRY_RUN=env)
    assert out.exit_code == 0, out.output
    assert (aid not in world.annotation_ids()) is deletes
    assert f"decided by {decided_by}" in out.output


@pytest.mark.parametrize(
    ("env", "flags", "deletes", "decided_by"),
    [
        pytest.param({"RECONCILER_DRY_RUN": "true"}, [], False, "RECONCILER_DRY_RUN=true", id="env-true"),
        pytest.param({"RECONCILER_DRY_RUN": "false"}, ["--dry-run"], False, "--dry-run", id="flag-dry-run"),
        pytest.param({"RECONCILER_DRY_RUN": "false"}, [], True, "RECONCILER_DRY_RUN=false", id="env-false"),
        pytest.param({}, [], False, "the default", id="unset"),
    ],
)
def test_the_purge_command_says_what_decided_its_dry_run(
    world: World, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], flags: list[str], deletes: bool, decided_by: str
) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    world.reconciler().apply_changes(removed(key))
    monkeypatch.delenv("RECONCILER_DRY_RUN", raising=False)
    purge_env = {"RECONCILER_GRACE_PERIOD_HOURS": "1", **env}
    with world.engine.begin() as conn:  # due now by the wall clock the CLI uses
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET purge_after = :t"),
            {"t": datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)},
        )
    out = run_cli(world, cli, ["purge", "--bucket", BUCKET, *flags], **purge_env)
    assert out.exit_code == 0, out.output
    assert (world.ids[key] not in world.annotation_ids()) is deletes
    assert f"decided by {decided_by}" in out.output


def test_a_dry_run_value_that_is_not_a_boolean_is_refused_by_every_command(world: World) -> None:
    aid = stale_in_ts_000(world)
    for command, args in ((cli, INGEST), (cli, ["purge", "--bucket", BUCKET])):
        out = run_cli(world, command, args, RECONCILER_DRY_RUN="maybe")
        assert out.exit_code == 2 and "RECONCILER_DRY_RUN" in out.output, out.output
    assert aid in world.annotation_ids()


@pytest.mark.parametrize(("env", "restores"), [("true", False), ("false", True)])
def test_restore_honours_reconciler_dry_run(world: World, env: str, restores: bool) -> None:
    key = world.portal.metadata_keys[0]
    aid = world.ids[key]
    world.delete(key)
    r = world.reconciler()
    r.apply_changes(removed(key))
    world.clock.advance(hours=2)
    assert r.purge().deleted == [aid]
    out = run_cli(
        world, cli, ["restore", "--db-url", world.db_url, "--annotation-id", str(aid)], RECONCILER_DRY_RUN=env
    )
    assert out.exit_code == 0, out.output
    assert (aid in world.annotation_ids()) is restores
    assert f"decided by RECONCILER_DRY_RUN={env}" in out.output
