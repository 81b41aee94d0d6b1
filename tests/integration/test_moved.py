"""Moves (issue 25, point 6): a row is not missing while another listed metadata file in its voxel spacing carries
its natural key (run, deposition, annotation_ingest_id). Such a row is *moved*, never deleted; the scan, the purge
and `status` report it with the new key and the `annotation-reconciler ingest` command that re-points it. Reading
a candidate move costs a GET per untracked key in the row's voxel spacing, and only then. Real PostgreSQL, moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from annotation_reconciler.cli.main import cli
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.storage.counting import RequestCounter
from support.faults import inject_at
from support.world import BUCKET, World, removed


def move(world: World, key: str, new_key: str, *, edit: dict[str, Any] | None = None) -> None:
    """What curators do: copy the metadata file to ``new_key`` (edited, if ``edit``), then delete the original."""
    document = json.loads(world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    document.update(edit or {})
    world.s3.put_object(Bucket=BUCKET, Key=new_key, Body=json.dumps(document).encode())
    world.s3.delete_object(Bucket=BUCKET, Key=key)


#: where a curator may move annotation 1's metadata (``…/Annotations/101/membrane-1.0.json``) in its voxel spacing
MOVES = [
    pytest.param(lambda k: k.replace("membrane-1.0.json", "membrane-renamed-1.0.json"), id="renamed-in-its-folder"),
    pytest.param(lambda k: k.replace("/101/", "/117/"), id="moved-to-another-folder"),
    pytest.param(lambda k: k.replace("/101/membrane-1.0.json", "/117/Membrane_v2-2.0.json"), id="moved-and-renamed"),
]


@pytest.mark.parametrize("where", MOVES)
@pytest.mark.parametrize("events", ["events-delivered", "events-lost"])
def test_a_moved_metadata_file_costs_the_row_nothing(world: World, where: Any, events: str) -> None:
    key = world.portal.metadata_keys[1]
    aid = world.ids[key]
    new_key = where(key)
    move(world, key, new_key)
    r = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="1")
    if events == "events-delivered":
        r.apply_changes(removed(key))  # the Removed event quarantines it
    world.clock.advance(minutes=5)
    scan = r.scan_shard(Scope(dataset_id=10001))
    assert scan.quarantined == [] and scan.moved == [(aid, new_key)]
    world.clock.advance(hours=2)
    purge = r.purge()
    assert purge.deleted == [] and aid in world.annotation_ids()
    assert purge.moved == ([(aid, new_key)] if events == "events-delivered" else [])
    status = CliRunner().invoke(cli, ["status", "--db-url", world.db_url, "--output", "json"])
    (untracked,) = json.loads(status.output)["untracked_metadata"]
    assert untracked["metadata_key"] == new_key and untracked["moved_annotation_id"] == aid
    assert untracked["ingest"].startswith("annotation-reconciler ingest") and "--run-name TS_000" in untracked["ingest"]
    text_status = CliRunner().invoke(cli, ["status", "--db-url", world.db_url], env={"COLUMNS": "200"})
    assert f"annotation {aid} moved to {new_key}" in text_status.output


def test_the_purge_command_reports_the_move_and_the_command_that_re_points_it(world: World) -> None:
    key = world.portal.metadata_keys[1]
    aid = world.ids[key]
    new_key = key.replace("/101/", "/117/")
    move(world, key, new_key)
    world.reconciler().apply_changes(removed(key))
    import datetime

    from sqlalchemy import text

    with world.engine.begin() as conn:  # due by the wall clock the CLI uses
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET purge_after = :t"),
            {"t": datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)},
        )
    out = CliRunner().invoke(
        cli,
        ["purge", "--db-url", world.db_url, "--bucket", BUCKET, "--no-dry-run"],
        env={"COLUMNS": "200", "RECONCILER_MAX_PURGE_FRACTION": "1"},
    )
    assert out.exit_code == 0, out.output
    assert aid in world.annotation_ids()
    assert f"annotation {aid} moved to {new_key}" in out.output and "annotation-reconciler ingest" in out.output


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param({"annotation_ingest_id": "101-membrane-9.9"}, id="another-ingest-id"),
        pytest.param({"deposition_id": 999}, id="another-deposition"),
    ],
)
def test_a_file_with_another_natural_key_is_no_move(world: World, edit: dict[str, Any]) -> None:
    """The file that replaced it names another annotation: the row is stale as usual, and purged."""
    key = world.portal.metadata_keys[1]
    aid = world.ids[key]
    move(world, key, key.replace("/101/", "/117/"), edit=edit)
    r = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="1")
    r.apply_changes(removed(key))
    world.clock.advance(hours=2)
    purge = r.purge()
    assert purge.deleted == [aid] and purge.moved == []


def test_a_move_in_another_voxel_spacing_or_run_is_no_move(world: World) -> None:
    """Only the row's own voxel spacing is read: a copy in another run carries another natural key (its run)."""
    key = world.portal.metadata_keys[1]
    aid = world.ids[key]
    other_run = key.replace("/TS_000/", "/TS_001/").replace("/101/", "/117/")
    move(world, key, other_run)
    r = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="1")
    r.apply_changes(removed(key))
    world.clock.advance(hours=2)
    assert r.purge().deleted == [aid]


def test_an_unreadable_candidate_move_leaves_the_row_unknown(world: World) -> None:
    key = world.portal.metadata_keys[1]
    aid = world.ids[key]
    new_key = key.replace("/101/", "/117/")
    move(world, key, new_key)
    r = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="1")
    r.apply_changes(removed(key))
    world.clock.advance(hours=2)
    client = boto3.client("s3", region_name="us-west-2")
    inject_at(client, "GetObject", new_key)
    purge = world.reconciler(s3=client, RECONCILER_MAX_PURGE_FRACTION="1").purge()
    assert purge.deleted == [] and [u.ref.id for u in purge.unknown] == [aid] and aid in world.annotation_ids()


def test_a_candidate_move_costs_a_get_per_untracked_key_of_the_voxel_spacing_and_only_then(world: World) -> None:
    spacing = world.portal.metadata_keys[1].rsplit("/", 2)[0]
    for n in (117, 118):  # two untracked files in the voxel spacing of annotation 1
        world.s3.put_object(
            Bucket=BUCKET, Key=f"{spacing}/{n}/stray-{n}-1.0.json", Body=b'{"annotation_ingest_id": "x"}'
        )
    client = boto3.client("s3", region_name="us-west-2")
    counter = RequestCounter.attach(client)
    r = world.reconciler(s3=client)
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == []
    assert counter.counts["GetObject"] == 0  # nothing suspicious: nothing read
    world.delete(world.portal.metadata_keys[1])
    assert r.scan_shard(Scope(dataset_id=10001)).quarantined == [world.ids[world.portal.metadata_keys[1]]]
    assert counter.counts["GetObject"] == 2  # one GET per untracked key of its voxel spacing


def test_a_duplicate_row_whose_copy_is_gone_is_no_move_onto_the_file_another_row_stores(world: World) -> None:
    """Two rows carry one natural key: the original's, and a duplicate pointing at a copy of its metadata. The copy
    is deleted: the duplicate is stale, not moved, since the file that carries its natural key is another row's
    (a listed key some row stores is not untracked, whoever stores it), and reading it would cost a GET for
    nothing."""
    key = world.portal.metadata_keys[1]
    original = world.ids[key]
    copy = key.replace("membrane-1.0.json", "membrane-copy-1.0.json")
    with world.engine.begin() as conn:
        conn.execute(
            text("""INSERT INTO annotation SELECT (jsonb_populate_record(NULL::annotation, to_jsonb(a)
                      || jsonb_build_object('id', 999999, 's3_metadata_path', CAST(:path AS text)))).*
                    FROM annotation a WHERE a.id = :a"""),
            {"a": original, "path": f"s3://{BUCKET}/{copy}"},
        )
    r = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="1")
    r.apply_changes(removed(copy))  # the copy went (it was never in this bucket: gone all the same)
    world.clock.advance(hours=2)
    client = boto3.client("s3", region_name="us-west-2")
    counter = RequestCounter.attach(client)
    purge = world.reconciler(s3=client, RECONCILER_MAX_PURGE_FRACTION="1").purge()
    assert purge.deleted == [999999] and purge.moved == [] and original in world.annotation_ids()
    assert counter.counts.get("GetObject", 0) == 0


def test_a_row_without_a_deposition_or_an_ingest_id_has_no_natural_key_to_move_by(world: World) -> None:
    """The importer upserts on (deposition, ingest id): a row lacking either cannot be matched to a file, so it has
    no natural key to be moved by."""
    whole, no_deposition, no_ingest_id = (world.ids[k] for k in world.portal.metadata_keys[:3])
    with world.engine.begin() as conn:
        conn.execute(text("UPDATE annotation SET deposition_id = NULL WHERE id = :a"), {"a": no_deposition})
        conn.execute(text("UPDATE annotation SET annotation_ingest_id = '' WHERE id = :a"), {"a": no_ingest_id})
        keys = annotation_rows.natural_keys(conn, [whole, no_deposition, no_ingest_id])
        (deposition, ingest_id) = conn.execute(
            text("SELECT deposition_id, annotation_ingest_id FROM annotation WHERE id = :a"), {"a": whole}
        ).one()
    assert keys == {whole: (deposition, ingest_id), no_deposition: None, no_ingest_id: None}
    assert deposition is not None and ingest_id
