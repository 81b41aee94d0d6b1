"""Operations without toil (issue 16), on the real PostgreSQL and moto: calibrated guards at the shipped
defaults, releases that stick, who decided, undo, data files found by scans, the scan page limit, logs."""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from annotation_reconciler.cleanup_stale_annotations import cleanup_stale_annotations
from annotation_reconciler.cli.main import cli
from annotation_reconciler.db_import import ingest
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.notifications import ChangeKind, ObjectChange
from annotation_reconciler.paths import BucketLayout
from annotation_reconciler.reconcile import Reconciler
from annotation_reconciler.restore import RestoreError, RestoreScope, restore
from annotation_reconciler.results import PurgeResult
from annotation_reconciler.scope import Scope
from annotation_reconciler.storage import S3Storage
from support.logs import handler_logs
from support.world import BUCKET, World, created, make_world, removed

#: The shipped default of the mass-deletion guard (settings.py, infra/env/examples/*.json).
DEFAULTS = {"RECONCILER_MAX_PURGE_FRACTION": "0.1"}
PORTAL_TABLES = ("annotation", "annotation_shape", "annotation_file", "annotation_author", "annotation_method_link")


@pytest.fixture
def small(engine: Engine, s3: Any, db_url: str) -> World:
    """Two datasets of five runs, one annotation per voxel spacing: the portal's common shape."""
    return make_world(engine, s3, db_url, PortalSpec(datasets=2, runs_per_dataset=5, annotations_per_voxel_spacing=1))


def purged_one(world: World, index: int) -> int:
    """The annotation of ``world.portal.metadata_keys[index]``: its metadata deleted, quarantined and purged."""
    _, aid, r = removed_by_event(world, index, RECONCILER_MAX_PURGE_FRACTION="0.5")
    world.clock.advance(hours=2)
    assert r.purge().deleted == [aid]
    return aid


def removed_by_event(world: World, index: int, **env: str) -> tuple[str, int, Reconciler]:
    """``world.portal.metadata_keys[index]`` deleted and its Removed event applied: (key, annotation id, reconciler)."""
    key = world.portal.metadata_keys[index]
    world.delete(key)
    r = reconciler(world, **env)
    r.apply_changes(removed(key))
    return key, world.ids[key], r


def ledger_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT * FROM annotation_reconciler.annotation_quarantine ORDER BY id")).all())


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every portal annotation table, in id order."""
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))] for t in PORTAL_TABLES}  # noqa: S608


def reconciler(world: World, **env: str) -> Reconciler:
    return world.reconciler(**{**DEFAULTS, **env})


# --- 1. calibrated guards at the shipped defaults -------------------------------------------------


def test_a_lone_retraction_in_a_healthy_run_is_quarantined_then_purged_without_approval(small: World) -> None:
    """The only annotation of a voxel spacing loses its metadata (its event was lost); the run keeps its
    other objects. Today's rules held it; now the scan quarantines it and the purge deletes it."""
    lone = small.portal.annotations[0]
    small.delete(lone.metadata_key)
    r = reconciler(small)
    scan = r.scan_shard(Scope(dataset_id=lone.dataset_id))
    assert scan.quarantined == [small.ids[lone.metadata_key]] and scan.held == []
    small.clock.advance(hours=2)
    purge = r.purge()
    assert purge.deleted == [small.ids[lone.metadata_key]] and purge.held == []
    assert small.ledger()[small.ids[lone.metadata_key]] == "purged"


def test_a_retraction_of_the_whole_annotation_folder_is_ordinary_too(small: World) -> None:
    """Metadata and data files gone (the Annotations/ prefix lists nothing), the run's other objects stay."""
    lone = small.portal.annotations[1]
    folder = lone.metadata_key.rsplit("/", 1)[0] + "/"
    small.delete(*[k for k in small.portal.all_keys() if k.startswith(folder)])
    counter = _count_requests(small)
    scan = reconciler(small).scan_shard(Scope(dataset_id=lone.dataset_id))
    assert scan.quarantined == [small.ids[lone.metadata_key]] and scan.held == []
    # one LIST per Annotations/ prefix, plus one LIST of one key of the dataset folder (its first key,
    # 10001/TS_000/…, lies outside the empty prefix), and one LIST with a delimiter per folder level (5: the root
    # for the dataset folder, then the run down to Annotations/) of the
    # prefix that lacks a key (the spelling-twin check); never a HEAD
    assert counter.counts == {"ListObjectsV2": 5 + 1 + 5}


def _count_requests(world: World) -> Any:
    from annotation_reconciler.storage.counting import RequestCounter

    return RequestCounter.attach(world.s3)


def test_one_stale_annotation_in_a_dataset_of_five_is_purged_without_approval(small: World) -> None:
    victim = small.portal.annotations[2]
    small.delete(victim.metadata_key)
    r = reconciler(small)
    assert r.apply_changes(removed(victim.metadata_key)).quarantined == [small.ids[victim.metadata_key]]
    small.clock.advance(hours=2)
    purge = r.purge()
    assert purge.deleted == [small.ids[victim.metadata_key]] and purge.held == [] and purge.held_datasets == {}


def three_of_five_purged(small: World) -> tuple[list[str], Reconciler, PurgeResult]:
    """Three of dataset 10001's five metadata files removed (their events delivered), then the purge."""
    stale_keys = [a.metadata_key for a in small.portal.annotations if a.dataset_id == 10001][:3]
    small.delete(*stale_keys)
    r = reconciler(small)
    r.apply_changes(removed(*stale_keys))
    small.clock.advance(hours=2)
    return stale_keys, r, r.purge()


def test_a_third_deletion_in_a_dataset_of_five_is_held(small: World) -> None:
    stale_keys, _, purge = three_of_five_purged(small)
    assert purge.deleted == [] and sorted(purge.held) == sorted(small.ids[k] for k in stale_keys)
    assert purge.held_datasets == {10001: (3, 5)}


def test_a_whole_dataset_vanishing_is_held_by_the_scan_and_by_the_purge(small: World) -> None:
    dataset = [a.metadata_key for a in small.portal.annotations if a.dataset_id == 10001]
    small.delete(*[k for k in small.portal.all_keys() if k.startswith("10001/")])
    r = reconciler(small)
    scan = r.scan_shard(Scope(dataset_id=10001))
    assert scan.quarantined == [] and sorted(scan.held) == sorted(small.ids[k] for k in dataset)
    # each held row names its own empty prefix (one reason per prefix, never another prefix's)
    prefix_of = {small.ids[k]: k.rsplit("/", 2)[0] + "/" for k in dataset}
    assert all(
        "holds nothing else" in row.reason and prefix_of[row.annotation_id] in row.reason
        for row in ledger_rows(small.engine)
    )
    # the same loss seen through events: quarantined, then held by the guard (5 of 5)
    other = [a.metadata_key for a in small.portal.annotations if a.dataset_id == 10002]
    small.delete(*other)
    r.apply_changes(removed(*other))
    small.clock.advance(hours=2)
    purge = r.purge()
    assert purge.deleted == [] and purge.held_datasets == {10002: (5, 5)}
    assert small.annotation_ids() == set(small.ids.values())


def test_a_prefix_setting_that_matches_nothing_is_held(engine: Engine, s3: Any, db_url: str) -> None:
    """Stored paths relative to a root the setting names wrongly: every listing and dataset folder is empty."""
    w = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=5, path_style="relative"))
    scan = reconciler(w, RECONCILER_S3_PREFIX=f"s3://{BUCKET}/portal/").scan_shard(Scope(dataset_id=10001))
    assert scan.quarantined == [] and len(scan.held) == len(w.ids)


# --- 2. an operator's release sticks ----------------------------------------------------------------


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


# --- 3. the audit says who decided ------------------------------------------------------------------


def test_the_purged_row_keeps_the_source_that_quarantined_it_and_operators_are_named(world: World) -> None:
    by_scan, by_event = world.portal.metadata_keys[0], world.portal.metadata_keys[1]
    world.delete(by_scan, by_event)
    r = reconciler(world, RECONCILER_MAX_PURGE_FRACTION="0.5")
    r.apply_changes(removed(by_event))
    r.scan_shard(Scope(dataset_id=10001))
    world.clock.advance(hours=2)
    assert sorted(r.purge().deleted) == sorted([world.ids[by_scan], world.ids[by_event]])
    sources = {row.annotation_id: (row.status, row.source) for row in ledger_rows(world.engine)}
    assert sources == {world.ids[by_scan]: ("purged", "scan"), world.ids[by_event]: ("purged", "event")}
    released = world.portal.metadata_keys[2]
    world.delete(released)
    r.apply_changes(removed(released))
    r.release(world.ids[released], by="carol")
    row = next(x for x in ledger_rows(world.engine) if x.annotation_id == world.ids[released])
    assert (row.status, row.resolved_by, row.exempt) == ("released", "carol", True)
    assert "released by carol" in row.resolution


def test_an_approval_names_the_operator_and_the_purge_keeps_it(small: World) -> None:
    stale_keys, r, purge = three_of_five_purged(small)
    assert sorted(purge.held) == sorted(small.ids[k] for k in stale_keys)  # 3 of 5: beyond the floor
    out = CliRunner().invoke(cli, ["approve", "--db-url", small.db_url, "--dataset-id", "10001", "--by", "frank"])
    assert out.exit_code == 0, out.output
    small.clock.now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)  # the CLI's wall clock
    assert sorted(r.purge().deleted) == sorted(small.ids[k] for k in stale_keys)
    rows = [(row.status, row.approved_by, row.approved_at is not None) for row in ledger_rows(small.engine)]
    assert rows == [("purged", "frank", True)] * 3


# --- 4. undo ----------------------------------------------------------------------------------------


def test_restore_puts_every_portal_table_back_as_it_was(world: World) -> None:
    before = dump(world.engine)
    keys = world.portal.metadata_keys[:2]
    world.delete(*keys)
    r = reconciler(world, RECONCILER_MAX_PURGE_FRACTION="0.5")
    r.apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    assert len(r.purge().deleted) == 2
    purged = dump(world.engine)
    assert purged != before
    with world.engine.begin() as conn:
        dry = restore(conn, RestoreScope(dataset_id=10001), by="dave", now=world.clock(), dry_run=True)
    assert dry.annotations == sorted(world.ids[k] for k in keys) and dump(world.engine) == purged
    assert dry.rows == {
        "annotation": 2,
        "annotation_shape": 4,
        "annotation_file": 6,
        "annotation_author": 4,
        "annotation_method_link": 2,
    }
    runner = CliRunner()
    out = runner.invoke(
        cli, ["restore", "--db-url", world.db_url, "--dataset-id", "10001", "--no-dry-run", "--by", "dave"]
    )
    assert out.exit_code == 0, out.output
    assert "restored 2 annotations" in out.output
    assert dump(world.engine) == before
    rows = {row.annotation_id: row for row in ledger_rows(world.engine)}
    assert {(rows[world.ids[k]].status, rows[world.ids[k]].resolved_by) for k in keys} == {("restored", "dave")}
    # the sequences moved past the restored ids: a new row gets a fresh id
    with world.engine.begin() as conn:
        new_id = conn.execute(
            text("""INSERT INTO annotation_author (annotation_id, author_list_order, name)
                    VALUES (:a, 9, 'x') RETURNING id"""),
            {"a": world.ids[keys[0]]},
        ).scalar_one()
    assert new_id > max(r[1] for r in before["annotation_author"])
    # restored rows are exempt: the scan leaves them alone while their metadata is still missing
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    again = runner.invoke(cli, ["restore", "--db-url", world.db_url, "--annotation-id", str(world.ids[keys[0]])])
    assert again.exit_code == 1 and "no purged annotation matches" in again.output


def test_restore_refuses_when_the_id_or_the_natural_key_exists_now(world: World) -> None:
    aid = purged_one(world, 3)
    # the importer brought the annotation back under a new id meanwhile
    with world.engine.begin() as conn:
        conn.execute(
            text("""INSERT INTO annotation SELECT (jsonb_populate_record(NULL::annotation,
                      jsonb_set(snapshot -> 'annotation', '{id}', to_jsonb(999999)))).*
                    FROM annotation_reconciler_audit.deleted_annotation WHERE annotation_id = :a"""),
            {"a": aid},
        )
    before = dump(world.engine)
    with pytest.raises(RestoreError, match="has its natural key") as info, world.engine.begin() as conn:
        restore(conn, RestoreScope(annotation_id=aid), by="erin", now=world.clock(), dry_run=False)
    assert "annotation 999999" in str(info.value) and "Nothing was restored" in str(info.value)
    assert dump(world.engine) == before
    runner = CliRunner()
    out = runner.invoke(cli, ["restore", "--db-url", world.db_url])
    assert out.exit_code == 2 and "--annotation-id" in out.output
    out = runner.invoke(cli, ["restore", "--db-url", world.db_url, "--dataset-id", "1", "--since", "yesterday"])
    assert out.exit_code == 2 and "ISO 8601" in out.output


def test_restore_refuses_a_child_id_taken_since(world: World) -> None:
    aid = purged_one(world, 4)
    with world.engine.begin() as conn:
        author = conn.execute(
            text(
                "SELECT CAST(snapshot -> 'annotation_author' -> 0 ->> 'id' AS integer) FROM "
                "annotation_reconciler_audit.deleted_annotation"
            )
        ).scalar_one()
        other = world.ids[world.portal.metadata_keys[5]]
        conn.execute(
            text("INSERT INTO annotation_author (id, annotation_id, author_list_order, name) VALUES (:i, :a, 5, 'y')"),
            {"i": author, "a": other},
        )
    with pytest.raises(RestoreError, match=f"annotation_author id {author} exists"), world.engine.begin() as conn:
        restore(conn, RestoreScope(annotation_id=aid), by="erin", now=world.clock(), dry_run=False)


# --- 5. scans find missing data files and their return -----------------------------------------------


def test_a_scan_records_a_missing_data_file_and_its_return(world: World) -> None:
    ann = world.portal.annotations[0]
    plain = next(f for f in ann.files if not f.is_prefix)
    zarr = next(f for f in ann.files if f.is_prefix)
    world.delete(plain.key, *[k for k in ann.noise_keys if k.startswith(zarr.key + "/")])
    r = reconciler(world)
    scan = r.scan_shard(Scope(dataset_id=ann.dataset_id))
    assert (scan.missing_files, scan.quarantined) == (2, [])
    with world.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT annotation_id, removed_key FROM annotation_reconciler.missing_annotation_file "
                "WHERE resolved_at IS NULL ORDER BY 2"
            )
        ).all()
    assert rows == sorted(
        [(world.ids[ann.metadata_key], plain.key), (world.ids[ann.metadata_key], zarr.key)], key=lambda x: x[1]
    )
    assert r.scan_shard(Scope(dataset_id=ann.dataset_id)).missing_files == 0  # recorded once
    world.s3.put_object(Bucket=BUCKET, Key=plain.key, Body=b"{}")
    assert r.scan_shard(Scope(dataset_id=ann.dataset_id)).restored_files == 1


def test_a_scan_closes_a_report_only_for_the_removed_keys_it_lists_again(world: World) -> None:
    """Issue 18's rule for missing-file reports holds at the scan too: a zarr that lists again closes the
    report naming the zarr, but not the report of a chunk the listing does not show."""
    ann = world.portal.annotations[0]
    zarr = next(f for f in ann.files if f.is_prefix)
    chunk = next(k for k in ann.noise_keys if k.startswith(zarr.key + "/"))
    other = next(a for a in world.portal.annotations[1:] if a.dataset_id == ann.dataset_id)
    other_zarr = next(f for f in other.files if f.is_prefix)
    r = reconciler(world)
    world.delete(chunk)
    assert r.apply_changes(removed(chunk)).missing_files == 1  # one chunk of a zarr gone: its report
    world.delete(*[k for k in other.noise_keys if k.startswith(other_zarr.key + "/")])
    assert r.scan_shard(Scope(dataset_id=ann.dataset_id)).missing_files == 1  # the other zarr, all gone
    world.restore(*[k for k in other.noise_keys if k.startswith(other_zarr.key + "/")][:1])
    scan = r.scan_shard(Scope(dataset_id=ann.dataset_id))
    with world.engine.connect() as conn:
        still_open = (
            conn.execute(
                text("SELECT removed_key FROM annotation_reconciler.missing_annotation_file WHERE resolved_at IS NULL")
            )
            .scalars()
            .all()
        )
    assert scan.restored_files == 1 and still_open == [chunk]


def test_a_scan_closes_the_report_of_a_key_inside_a_zarr_it_lists_again(world: World) -> None:
    """A removed key inside a zarr that the listing does show (its ``.zattrs``, listed before the chunks are
    skipped) closes its report when a scan lists it again, its Created event lost."""
    ann = world.portal.annotations[0]
    zarr = next(f for f in ann.files if f.is_prefix)
    attrs = next(k for k in ann.noise_keys if k == zarr.key + "/.zattrs")
    r = reconciler(world)
    world.delete(attrs)
    assert r.apply_changes(removed(attrs)).missing_files == 1
    world.restore(attrs)  # its Created event is lost
    assert r.scan_shard(Scope(dataset_id=ann.dataset_id)).restored_files == 1
    with world.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM annotation_reconciler.missing_annotation_file WHERE resolved_at IS NULL")
            ).scalar()
            == 0
        )


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


# --- 6. RECONCILER_SCAN_PAGE_LIMIT ---------------------------------------------------------------------


def test_a_prefix_beyond_the_page_limit_is_unknown_and_reported(small: World, caplog: pytest.LogCaptureFixture) -> None:
    ann = small.portal.annotations[0]
    folder = ann.metadata_key.rsplit("/", 2)[0] + "/"
    for i in range(1001):  # one more than a LIST page
        small.s3.put_object(Bucket=BUCKET, Key=f"{folder}100/extra-{i:04d}.ndjson", Body=b"")
    small.delete(ann.metadata_key)
    r = reconciler(small, RECONCILER_SCAN_PAGE_LIMIT="1")
    with caplog.at_level("WARNING", logger="annotation_reconciler.survey"):
        scan = r.scan_shard(Scope(dataset_id=ann.dataset_id))
    assert scan.scope == Scope(dataset_id=ann.dataset_id)
    assert [m.getMessage() for m in caplog.records if m.name == "annotation_reconciler.survey"] == [
        f"1 prefix needs more LIST pages than RECONCILER_SCAN_PAGE_LIMIT=1; their annotations are unknown: {folder}"
    ]
    assert scan.over_page_limit == [folder] and scan.errors == [] and scan.quarantined == []
    assert [u.ref.id for u in scan.unknown] == [small.ids[ann.metadata_key]]
    assert "RECONCILER_SCAN_PAGE_LIMIT=1" in scan.unknown[0].why
    assert reconciler(small).scan_shard(Scope(dataset_id=ann.dataset_id)).quarantined == [small.ids[ann.metadata_key]]


# --- 7. logs --------------------------------------------------------------------------------------------


def test_every_log_line_of_an_invocation_is_json_with_its_correlation_id(
    engine: Engine, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:

    from annotation_reconciler import handlers
    from annotation_reconciler.local.lambda_runtime import LocalContext
    from annotation_reconciler.runtime import build_runtime
    from support.world import s3_notification, sqs_event

    small = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=5, annotations_per_voxel_spacing=5))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    env = {**os.environ, "RECONCILER_DB_URL": small.db_url, "RECONCILER_BUCKET": BUCKET, "RECONCILER_DRY_RUN": "true"}
    runtime = build_runtime({**env, "RECONCILER_GRACE_PERIOD_HOURS": "1", "RECONCILER_MAX_PURGE_FRACTION": "1"})
    runtime.reconciler.clock = small.clock
    monkeypatch.setattr(handlers.common, "runtime_factory", lambda: runtime)
    keys = small.portal.metadata_keys
    small.delete(*keys)
    with handler_logs() as buffer:
        handlers.handle_events(sqs_event(*(s3_notification(BUCKET, k) for k in keys)), LocalContext())
        small.clock.advance(hours=2)
        bridge = {
            "id": "evt-42",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "detail": {"action": "purge"},
        }
        handlers.handle_schedule(bridge, LocalContext())
    runtime.engine.dispose()
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    logs = [x for x in lines if "_aws" not in x]
    assert {x["correlation_id"] for x in logs if x["message"] == "events applied"} == {"m-0"}
    applied = next(x for x in logs if x["message"] == "events applied")
    assert applied["quarantined_count"] == len(keys) and applied["quarantined"].endswith(f"and {len(keys) - 20} more")
    # the dry-run line of the stdlib logger in purge.py, in the same JSON, with the schedule's event id
    stdlib = [x for x in logs if x.get("name") == "annotation_reconciler.purge"]
    assert stdlib and all(x["correlation_id"] == "evt-42" for x in stdlib)
    assert all("correlation_id" in x for x in logs)


def test_the_dataset_folder_check_lists_one_key_at_a_time_and_looks_past_the_empty_prefix(s3: Any) -> None:
    from annotation_reconciler.storage import S3Storage
    from annotation_reconciler.storage.counting import RequestCounter

    storage = S3Storage(s3, BUCKET)
    inner = "9/R/Reconstructions/VoxelSpacing1.000/Annotations/"
    counter = RequestCounter.attach(s3)
    assert storage.holds_other_than("9/", inner) is False and counter.counts == {"ListObjectsV2": 1}
    s3.put_object(Bucket=BUCKET, Key=f"{inner}100/data.ndjson", Body=b"")  # the first key is inside the prefix
    counter.reset()
    assert storage.holds_other_than("9/", inner) is False and counter.counts == {"ListObjectsV2": 2}
    s3.put_object(Bucket=BUCKET, Key="9/dataset_metadata.json", Body=b"{}")  # sorts after the prefix
    counter.reset()
    assert storage.holds_other_than("9/", inner) is True and counter.counts == {"ListObjectsV2": 2}


def test_prefixes_beyond_the_page_limit_are_named_in_one_warning(
    small: World, caplog: pytest.LogCaptureFixture
) -> None:
    folders = sorted({a.metadata_key.rsplit("/", 2)[0] + "/" for a in small.portal.annotations})[:2]
    for folder in folders:
        for i in range(1001):
            small.s3.put_object(Bucket=BUCKET, Key=f"{folder}100/extra-{i:04d}.ndjson", Body=b"")
    with caplog.at_level("WARNING", logger="annotation_reconciler.survey"):
        scan = reconciler(small, RECONCILER_SCAN_PAGE_LIMIT="1").scan_shard(Scope())
    assert scan.over_page_limit == folders
    assert [m.getMessage() for m in caplog.records if m.name == "annotation_reconciler.survey"] == [
        f"2 prefixes need more LIST pages than RECONCILER_SCAN_PAGE_LIMIT=1; their annotations are unknown: "
        f"{folders[0]}, {folders[1]}"
    ]
