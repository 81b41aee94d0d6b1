"""An operator's release sticks (issue 16): the scan, the events, the importer and the cleanup command keep a
released annotation until its metadata comes back (newer than the removal released) or its stored path
changes, a scan that lists the metadata again ends the release and says why, and the CLI releases, clears
and shows releases. Real PostgreSQL, moto S3."""

from __future__ import annotations

import datetime
import json

from click.testing import CliRunner
from sqlalchemy import text

from annotation_reconciler.cli.cleanup_stale_annotations import cleanup_stale_annotations
from annotation_reconciler.cli.main import cli
from annotation_reconciler.db_import import ingest
from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.storage import S3Storage
from support.scenarios import ledger_rows, reconciler, removed_by_event
from support.world import BUCKET, World, created, removed


def test_a_release_sticks_until_the_metadata_comes_back_and_goes_again(world: World) -> None:
    key, aid, r = removed_by_event(world, 0)
    assert r.release(aid, by="alice")
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    assert r.apply_changes(removed(key)).quarantined == []  # a replayed or late event changes nothing
    assert world.ledger()[aid] == "released"
    world.restore(key)
    r.apply_changes(created(key))  # the metadata is back: the exemption lapses
    world.delete(key)
    assert r.apply_changes(removed(key)).quarantined == [aid]


def test_the_importer_and_the_cleanup_command_keep_a_released_annotation_until_it_is_cleared(world: World) -> None:
    key, aid, r = removed_by_event(world, 0)
    ann = next(a for a in world.portal.annotations if a.metadata_key == key)
    assert r.release(aid, by="alice")
    storage = S3Storage(world.s3, BUCKET)
    assert ingest(world.engine, storage, BucketLayout(BUCKET), ann.dataset_id, ann.run_name).deleted == []
    cleanup = CliRunner().invoke(
        cleanup_stale_annotations,
        ["--s3-bucket", BUCKET, "--db-uri", world.db_url, "--dataset-id", str(ann.dataset_id), "--no-dry-run", "--yes"],
    )
    assert cleanup.exit_code == 0, cleanup.output
    assert aid in world.annotation_ids()
    assert r.clear_release(aid, by="alice") == 1
    assert ingest(world.engine, storage, BucketLayout(BUCKET), ann.dataset_id, ann.run_name).deleted == [aid]


def test_a_scan_that_lists_the_metadata_again_ends_a_release(world: World) -> None:
    """The Created event of the re-upload is lost: the scan that lists the key ends the exemption, and the
    release it closes says why; removed again (its event lost too), the next scan quarantines it."""
    key, aid, r = removed_by_event(world, 0)
    assert r.release(aid, by="alice")
    world.clock.advance(minutes=5)
    world.restore(key)
    r.scan_shard(Scope(dataset_id=10001))
    (row,) = [x for x in ledger_rows(world.engine) if x.annotation_id == aid]
    assert (row.status, row.exempt) == ("released", False)
    lapsed = f"; exemption lapsed at {world.clock.now.isoformat()}: metadata found by reconciliation"
    assert row.resolution.endswith(lapsed)
    world.delete(key)
    world.clock.advance(minutes=5)
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == [aid]


def test_a_scan_releases_a_row_whose_metadata_is_back_and_says_why(world: World) -> None:
    key, aid, r = removed_by_event(world, 0)
    world.clock.advance(minutes=5)
    world.restore(key)  # its Created event is lost
    assert r.scan_shard(Scope(dataset_id=10001)).released == [aid]
    (row,) = ledger_rows(world.engine)
    assert (row.status, row.resolved_at, row.resolution) == (
        "released",
        world.clock.now,
        "metadata found by reconciliation",
    )


def test_a_release_ends_when_the_stored_path_changes(world: World) -> None:
    key = world.portal.metadata_keys[1]
    aid = world.ids[key]
    world.delete(key)
    r = reconciler(world)
    r.scan_shard(Scope(dataset_id=10001))
    assert r.release(aid, by="alice")
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    moved = key.replace("-1.0.json", "-2.0.json")
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :id"),
            {"p": f"s3://{BUCKET}/{moved}", "id": aid},
        )
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == [aid]


def test_a_redelivered_older_created_does_not_end_an_operators_release(world: World) -> None:
    """An exemption lapses only on something newer than the removal the operator released: an older Created
    redelivered after the release (SQS and EventBridge do not keep order) leaves it in place."""
    key = world.portal.metadata_keys[0]
    aid = world.ids[key]
    world.delete(key)
    r = reconciler(world)
    later = datetime.datetime(2026, 1, 1, 0, 0, 5, tzinfo=datetime.UTC)
    r.apply_changes([ObjectChange(BUCKET, key, ChangeKind.REMOVED, "s3", later, None)])
    assert r.release(aid, by="alice")
    r.apply_changes(created(key))  # 00:00:01, older than the removal at 00:00:05
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    with world.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT bool_or(exempt) FROM annotation_reconciler.annotation_quarantine")).scalar_one()
            is True
        )


def test_release_clear_and_status_through_the_cli(world: World) -> None:
    key = world.portal.metadata_keys[2]
    aid = world.ids[key]
    world.delete(key)
    r = reconciler(world)
    r.scan_shard(Scope(dataset_id=10001))
    runner = CliRunner()
    out = runner.invoke(cli, ["release", "--db-url", world.db_url, "--annotation-id", str(aid), "--by", "bob"])
    assert out.exit_code == 0, out.output
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    status = runner.invoke(cli, ["status", "--db-url", world.db_url, "--output", "json"])
    released = json.loads(status.output)["released_by_operator"]
    assert [(e["annotation_id"], e["by"]) for e in released] == [(aid, "bob")]
    out = runner.invoke(cli, ["release", "--db-url", world.db_url, "--annotation-id", str(aid), "--clear"])
    assert out.exit_code == 0 and "cleared" in out.output
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == [aid]
    again = runner.invoke(cli, ["release", "--db-url", world.db_url, "--annotation-id", "999999", "--clear"])
    assert again.exit_code == 2 and "no annotation 999999" in again.output  # an id that matches nothing
