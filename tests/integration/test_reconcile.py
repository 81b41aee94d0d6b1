"""The reconciler's rules, each with a test that fails when the rule is broken (real PostgreSQL, moto S3)."""

from __future__ import annotations

import datetime
import logging
import threading
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from sqlalchemy import Engine, event, text

from annotation_reconciler.core import SAFETY_MARGIN_S
from annotation_reconciler.errors import ConcurrentChangeError
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.notifications import ChangeKind, ObjectChange
from annotation_reconciler.reconcile import Reconciler
from annotation_reconciler.scope import Scope
from support.world import BUCKET, EVENT_TIME, SNAPSHOT, World, created, make_world, removed


def test_removal_event_quarantines_without_deleting(world: World) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    result = world.reconciler().apply_changes(removed(key))
    assert result.quarantined == [world.ids[key]]
    assert world.ids[key] in world.annotation_ids()
    assert world.ledger() == {world.ids[key]: "quarantined"}


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


def test_purge_recheck_releases_a_key_back_without_an_event(world: World) -> None:
    key = world.portal.metadata_keys[2]
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(key))  # the event says removed, but the object is there
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.released == [world.ids[key]] and result.deleted == []
    assert world.ledger()[world.ids[key]] == "released"


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


def test_guard_holds_a_mass_deletion_until_approved(world: World) -> None:
    dataset_keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == 10001]
    world.delete(*dataset_keys)
    reconciler = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="0.25")
    reconciler.apply_changes(removed(*dataset_keys))
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.deleted == [] and len(result.held) == len(dataset_keys)
    assert result.held_datasets == {10001: (12, 12)}
    assert world.annotation_ids() == set(world.ids.values())
    assert reconciler.purge().claimed == 0  # held rows wait for an operator
    assert reconciler.approve(10001) == len(dataset_keys)
    assert sorted(reconciler.purge().deleted) == sorted(world.ids[k] for k in dataset_keys)
    assert world.orphans() == 0


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
    settle = reconciler._settle

    def counted(conn: Any, claims: Any, *args: Any) -> None:
        sizes.append(len(claims))
        settle(conn, claims, *args)

    monkeypatch.setattr(reconciler, "_settle", counted)
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
    caplog.set_level(logging.WARNING, logger="annotation_reconciler.purge")
    result = reconciler.purge()
    assert sorted(getattr(result, outcome)) == ids and result.claimed == 2 and result.deleted == []
    dry = [m for m in caplog.messages if m.startswith("dry run")]
    expected = [f"dry run: would purge 1 annotation ({i})" for i in ids] if outcome == "would_delete" else []
    assert sorted(dry) == expected


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


def test_guard_counts_all_open_rows_not_one_batch(world: World) -> None:
    """Small purge batches must not slip a mass deletion past the guard."""
    dataset_keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == 10002]
    world.delete(*dataset_keys)
    reconciler = world.reconciler(RECONCILER_MAX_PURGE_FRACTION="0.25")
    reconciler.purge_batch_size = 1
    reconciler.apply_changes(removed(*dataset_keys))
    world.clock.advance(hours=2)
    result = reconciler.purge()
    ids = sorted(world.ids[k] for k in dataset_keys)
    assert result.deleted == [] and sorted(result.held) == ids
    assert {world.ledger()[i] for i in ids} == {"held"}
    assert set(ids) <= world.annotation_ids()


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


def test_two_purges_at_once_delete_each_row_once(world: World) -> None:
    keys = world.portal.metadata_keys[:6]
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys))
    world.clock.advance(hours=2)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def run() -> None:
        reconciler = world.reconciler()
        reconciler.purge_batch_size = 2
        barrier.wait()
        results.append(reconciler.purge())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    purged = [i for r in results for i in r.deleted]
    assert sorted(purged) == sorted(world.ids[k] for k in keys)
    with world.engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT annotation_id, count(*) FROM annotation_reconciler.annotation_quarantine WHERE "
                "status = 'purged' GROUP BY 1"
            )
        ).all()
    assert {c for _, c in counts} == {1} and len(counts) == 6


def test_s3_error_at_purge_recheck_deletes_nothing(world: World) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    world.reconciler().apply_changes(removed(key))
    world.clock.advance(hours=2)
    failing = boto3.client("s3", region_name="us-west-2")  # its one LIST fails with a 503 (SlowDown)
    with Stubber(failing) as stub:
        stub.add_client_error("list_objects_v2", service_error_code="SlowDown", http_status_code=503)
        result = world.reconciler(s3=failing).purge()
        stub.assert_no_pending_responses()
    assert result.deleted == [] and result.unknown == [world.ids[key]]
    assert world.ids[key] in world.annotation_ids() and world.ledger()[world.ids[key]] == "quarantined"


def test_scan_quarantines_missing_releases_found_and_quarantines_emptied_prefixes(world: World) -> None:
    lost = world.portal.annotations[0]  # its deletion event was lost
    world.delete(lost.metadata_key)
    emptied = [a.metadata_key for a in world.portal.annotations if a.run_name == "TS_001" and a.dataset_id == 10002]
    world.delete(*emptied)  # a voxel spacing emptied of metadata: the run still holds its other objects
    gone = [a.metadata_key for a in world.portal.annotations if a.run_name == "TS_002" and a.dataset_id == 10002]
    world.delete(*[k for k in world.portal.all_keys() if k.startswith("10002/TS_002/")])  # a whole run removed
    back = world.portal.annotations[5]
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(back.metadata_key))  # quarantined, but the object is there
    world.clock.advance(seconds=1)  # the scan lists after the event (a listing proves nothing about later events)
    results = [reconciler.scan_shard(Scope(dataset_id=d)) for d in (10001, 10002)]
    assert results[0].quarantined == [world.ids[lost.metadata_key]]
    assert results[0].released == [world.ids[back.metadata_key]]
    # ordinary while the dataset folder holds other objects (the purge's guard still counts them)
    assert results[1].quarantined == sorted(world.ids[k] for k in emptied + gone) and results[1].held == []
    assert results[0].prefixes_listed == 3 and results[1].prefixes_listed == 3
    statuses = world.ledger()
    assert statuses[world.ids[lost.metadata_key]] == "quarantined"
    assert {statuses[world.ids[k]] for k in emptied + gone} == {"quarantined"}


def test_scan_with_s3_errors_quarantines_nothing(world: World) -> None:
    world.delete(world.portal.metadata_keys[0])
    import boto3

    failing = boto3.client("s3", region_name="us-west-2")
    with Stubber(failing) as stub:
        for _ in range(3):
            stub.add_client_error("list_objects_v2", service_error_code="InternalError", http_status_code=500)
        result = world.reconciler(s3=failing).scan_shard(Scope(dataset_id=10001))
    assert result.quarantined == [] and len(result.errors) == 3 and len(result.unknown) == 12
    assert world.ledger() == {}


def test_scan_stops_on_time_budget_and_resumes(world: World) -> None:
    key = world.portal.annotations[-1].metadata_key  # in the last prefix of dataset 10002
    world.delete(key)
    reconciler = world.reconciler()
    budget = iter([100.0, 100.0, 1.0])
    first = reconciler.scan_shard(Scope(dataset_id=10002), remaining_seconds=lambda: next(budget, 1.0))
    assert not first.complete and first.prefixes_listed == 2 and first.quarantined == []
    second = reconciler.scan_shard(Scope(dataset_id=10002), resume_after=first.resume_after)
    assert second.complete and second.prefixes_listed == 1
    assert second.quarantined == [world.ids[key]]


def test_unmappable_paths_are_never_quarantined(world: World) -> None:
    victim = world.ids[world.portal.metadata_keys[0]]
    with world.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE annotation SET s3_metadata_path = 's3://another-bucket/10001/x/Annotations/1/a-1.json'"
                " WHERE id = :id"
            ),
            {"id": victim},
        )
    result = world.reconciler().scan_shard(Scope(dataset_id=10001))
    assert [u.ref.id for u in result.unknown] == [victim]
    assert victim not in world.ledger()


def test_data_file_removal_is_recorded_never_deleted(world: World) -> None:
    ann = world.portal.annotations[0]
    zarr = next(f for f in ann.files if f.is_prefix)
    chunk = ann.noise_keys[-1]
    assert chunk.startswith(zarr.key + "/")
    ndjson = ann.files[0].key
    world.delete(chunk, ndjson)
    reconciler = world.reconciler()
    result = reconciler.apply_changes(removed(chunk, ndjson))
    assert result.missing_files == 2 and result.quarantined == []
    world.clock.advance(hours=2)
    assert reconciler.purge().claimed == 0
    assert world.ids[ann.metadata_key] in world.annotation_ids()
    with world.engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM annotation_reconciler.missing_annotation_file WHERE resolved_at IS NULL")
            ).scalar()
            == 2
        )
    world.restore(ndjson)
    assert reconciler.apply_changes(created(ndjson)).restored_files == 1


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


# --- the ways a review once deleted valid annotations (issue 13) --------------------------------------------------


def quarantined_past_grace(world: World) -> tuple[Reconciler, str, int]:
    """The first annotation's metadata deleted, its Removed event applied, the grace period over."""
    key = world.portal.metadata_keys[0]
    world.delete(key)
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(key))
    world.clock.advance(hours=2)
    return reconciler, key, world.ids[key]


def rewrite_path(world: World, annotation_id: int, stored_path: str) -> None:
    """What the portal's own importer does when metadata moves: the row now points at the new key."""
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :id"), {"p": stored_path, "id": annotation_id}
        )


def test_purge_judges_the_current_row_not_the_ledger_copy(world: World) -> None:
    """Metadata moved to another Annotations/NNN/ folder; the row was rewritten after the Removed event."""
    old = world.portal.metadata_keys[0]
    victim = world.ids[old]
    new = old.replace("/Annotations/100/", "/Annotations/177/")
    world.s3.copy_object(Bucket=BUCKET, Key=new, CopySource={"Bucket": BUCKET, "Key": old})
    world.delete(old)
    reconciler = world.reconciler()
    assert reconciler.apply_changes(removed(old)).quarantined == [victim]
    rewrite_path(world, victim, f"s3://{BUCKET}/{new}")
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.deleted == [] and result.released == [victim]
    assert victim in world.annotation_ids()
    with world.engine.connect() as conn:
        resolution = conn.execute(
            text("SELECT resolution FROM annotation_reconciler.annotation_quarantine")
        ).scalar_one()
    assert "stored path changed" in resolution and new in resolution


def test_purge_never_deletes_on_a_key_spelled_differently_in_s3(engine: Engine, s3: Any, db_url: str) -> None:
    """The row holds …/ribosome-protéine-1.0.json in NFC; S3 holds the NFD spelling of the same name."""
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=1))
    key = world.portal.metadata_keys[0]
    victim = world.ids[key]
    folder = key.rsplit("/", 1)[0]
    nfc, nfd = f"{folder}/ribosome-prot\u00e9ine-1.0.json", f"{folder}/ribosome-prote\u0301ine-1.0.json"
    rewrite_path(world, victim, f"s3://{BUCKET}/{nfc}")
    world.delete(key)
    world.restore(nfd)
    reconciler = world.reconciler()
    scan = reconciler.scan_shard(Scope(dataset_id=world.portal.dataset_ids[0]))
    assert victim not in scan.quarantined and any("differs only in spelling" in u.why for u in scan.unknown)
    reconciler.apply_changes(removed(nfc))  # an event for the NFC key (as if it had existed): quarantined
    world.clock.advance(hours=2)
    result = reconciler.purge()
    assert result.deleted == [] and result.unknown == [victim] and victim in world.annotation_ids()


def test_a_wrong_prefix_setting_deletes_nothing_quarantined_under_the_right_one(
    engine: Engine, s3: Any, db_url: str
) -> None:
    """Rows with relative stored paths, quarantined under the right root; then RECONCILER_S3_PREFIX is changed."""
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=2, path_style="relative"))
    key = world.portal.metadata_keys[0]
    victim = world.ids[key]
    world.delete(key)
    assert world.reconciler().apply_changes(removed(key)).quarantined == [victim]
    world.clock.advance(hours=2)
    wrong = world.reconciler(RECONCILER_S3_PREFIX=f"s3://{BUCKET}/staging/")
    result = wrong.purge()
    assert result.deleted == [] and result.unknown == [victim] and victim in world.annotation_ids()
    assert world.ledger()[victim] == "quarantined"
    assert world.reconciler().purge().deleted == [victim]  # the right setting purges it


def test_a_reupload_during_the_purge_is_recorded_and_listed_with_the_reingest_command(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The purge listed the prefix (absent), then the metadata came back before its DELETE: S3 and the database
    cannot share a transaction, so the race is made visible: the Created event records a resurrection."""
    from click.testing import CliRunner

    from annotation_reconciler.cli.operate import status

    reconciler, key, victim = quarantined_past_grace(world)
    listed = reconciler.list_prefixes

    def list_then_reupload(*args: Any, **kwargs: Any) -> Any:
        answer = listed(*args, **kwargs)
        world.restore(key)
        return answer

    monkeypatch.setattr(reconciler, "list_prefixes", list_then_reupload)
    assert reconciler.purge().deleted == [victim]
    outcome = reconciler.apply_changes(created(key, at=EVENT_TIME + datetime.timedelta(hours=2)))
    assert outcome.resurrected == [(victim, key)]
    assert reconciler.apply_changes(created(key)).resurrected == []  # recorded once
    shown = CliRunner().invoke(status, ["--db-url", world.db_url], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    dataset = key.split("/")[0]
    assert f"purged annotation {victim} has its metadata back" in shown.output
    assert f"--dataset-id {dataset}" in shown.output and "--run-name" in shown.output


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


def test_purge_holds_no_lock_while_it_asks_s3(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the purge lists S3, an ObjectCreated event releases the row at once (no lock wait), and the
    purge then leaves the released row alone."""
    reconciler, key, victim = quarantined_past_grace(world)
    listed = reconciler.list_prefixes
    seen: list[Any] = []

    def list_and_release(*args: Any, **kwargs: Any) -> Any:
        answer = listed(*args, **kwargs)
        world.restore(key)
        with world.engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '1s'"))
            conn.commit()
        seen.append(world.reconciler().apply_changes(created(key)).released)
        return answer

    monkeypatch.setattr(reconciler, "list_prefixes", list_and_release)
    result = reconciler.purge()
    assert seen == [[victim]] and result.deleted == [] and victim in world.annotation_ids()


@pytest.mark.parametrize("failure", [ConcurrentChangeError("a row changed under the purge"), RuntimeError("boom")])
def test_a_failed_purge_batch_ends_its_claims_so_the_next_purge_retries_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    """A batch that rolls back (a concurrent change) or fails drops its lease: the rows are not stuck for the
    lease's 20 minutes, and nothing was deleted."""
    reconciler, _key, victim = quarantined_past_grace(world)

    def fails(*args: Any, **kwargs: Any) -> None:
        raise failure

    monkeypatch.setattr(reconciler, "_settle", fails)
    if isinstance(failure, ConcurrentChangeError):
        caplog.set_level(logging.WARNING, logger="annotation_reconciler.purge")
        assert reconciler.purge().errors == [str(failure)]
        assert caplog.messages == [f"purge batch rolled back: {failure}"]
    else:  # issue 27: the row fails alone too, so it is marked with its error and the purge goes on
        assert reconciler.purge().failed == [victim]
    with world.engine.connect() as conn:
        leases = (
            conn.execute(text("SELECT claimed_until FROM annotation_reconciler.annotation_quarantine")).scalars().all()
        )
    assert leases == [None] and victim in world.annotation_ids()
    monkeypatch.undo()
    assert world.reconciler().purge().deleted == [victim]  # same clock: no lease to wait out


def test_a_purge_that_cannot_even_mark_a_failed_row_raises_and_ends_its_claims(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database gone mid-purge: the row cannot be settled nor marked; the error is raised (ScheduleErrors)
    and the lease is dropped as far as it can be."""
    from annotation_reconciler.ledger import purge_claims

    reconciler, _key, victim = quarantined_past_grace(world)

    def fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(reconciler, "_settle", fails)
    monkeypatch.setattr(purge_claims, "mark_failed", fails)
    with pytest.raises(RuntimeError, match="boom"):
        reconciler.purge()
    with world.engine.connect() as conn:
        leases = (
            conn.execute(text("SELECT claimed_until FROM annotation_reconciler.annotation_quarantine")).scalars().all()
        )
    assert leases == [None] and victim in world.annotation_ids()


def test_a_purged_key_back_in_another_spelling_is_a_resurrection(world: World) -> None:
    reconciler, key, victim = quarantined_past_grace(world)
    assert reconciler.purge().deleted == [victim]
    folder, name = key.rsplit("/", 1)
    twin = f"{folder}/{name[0].upper()}{name[1:]}"
    world.restore(twin)
    assert reconciler.apply_changes(created(twin, at=EVENT_TIME + datetime.timedelta(hours=2))).resurrected == [
        (victim, key)
    ]


def test_a_moved_key_that_goes_missing_is_quarantined_again_under_its_new_path(world: World) -> None:
    """Quarantined under the old key, the row rewritten to a new key that then disappears as well: the next
    finding re-quarantines under the new key (fresh grace), so the purge can act on the right evidence."""
    old = world.portal.metadata_keys[0]
    victim = world.ids[old]
    new = old.replace("/Annotations/100/", "/Annotations/150/")
    world.delete(old)
    reconciler = world.reconciler()
    reconciler.apply_changes(removed(old))
    rewrite_path(world, victim, f"s3://{BUCKET}/{new}")  # the metadata moved; its new copy is gone too
    scan = reconciler.scan_shard(Scope(dataset_id=world.portal.annotations[0].dataset_id))
    assert victim in scan.quarantined
    with world.engine.connect() as conn:
        row = conn.execute(text("SELECT metadata_key, status FROM annotation_reconciler.annotation_quarantine")).one()
    assert tuple(row) == (new, "quarantined")
    world.clock.advance(hours=2)
    assert reconciler.purge().deleted == [victim]


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
    listed = reconciler.list_prefixes

    def list_then_remove_again(*args: Any, **kwargs: Any) -> Any:
        answer = listed(*args, **kwargs)
        world.delete(key)
        world.reconciler().apply_changes(removed(key, at=world.clock() + datetime.timedelta(minutes=1)))
        return answer

    monkeypatch.setattr(reconciler, "list_prefixes", list_then_remove_again)
    caplog.set_level(logging.INFO, logger="annotation_reconciler.purge")
    result = reconciler.purge()
    assert result.released == [] and result.deleted == [] and world.ledger()[victim] == "quarantined"
    assert f"purge leaves {victim} to the next purge: stamped after its listing" in caplog.messages
    monkeypatch.undo()
    world.clock.advance(minutes=2)
    assert reconciler.purge().deleted == [victim]


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


def test_a_shard_of_some_runs_reads_and_judges_only_their_annotations(world: World) -> None:
    """A large dataset is scanned in groups of runs (``Scope.run_ids``, from plan_shards): the shard reads, lists
    and judges only its runs' annotations; a missing key of another run of the dataset waits for that run's shard."""
    dataset = world.portal.dataset_ids[0]
    with world.engine.connect() as conn:
        run_id = dict(conn.execute(text("SELECT name, id FROM run WHERE dataset_id = :d"), {"d": dataset}).all())
    ours = [a for a in world.portal.annotations if a.dataset_id == dataset and a.run_name == "TS_000"]
    theirs = next(a for a in world.portal.annotations if a.dataset_id == dataset and a.run_name == "TS_001")
    world.delete(ours[0].metadata_key, theirs.metadata_key)
    result = world.reconciler().scan_shard(Scope(dataset_id=dataset, run_ids=(run_id["TS_000"],)))
    assert result.annotations == len(ours) and result.prefixes_listed == 1
    assert result.quarantined == [world.ids[ours[0].metadata_key]] and result.unknown == []
    assert world.ledger() == {world.ids[ours[0].metadata_key]: "quarantined"}


@pytest.mark.parametrize("size", [10, 100])
def test_a_batch_of_events_is_at_most_three_statements(engine: Engine, s3: Any, db_url: str, size: int) -> None:
    """Issue 30: a batch of any mix (metadata and data files removed, metadata and data files created again, an
    operator's exemption lapsing, a purged annotation back) maps, writes and stamps in at most 3 SQL statements, and
    does what the statements one by one did."""
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=10, annotations_per_voxel_spacing=4))
    reconciler = world.reconciler()
    anns = world.portal.annotations
    back, purged = anns[0].metadata_key, anns[1].metadata_key
    reconciler.apply_changes(removed(back, purged))
    with world.engine.begin() as conn:  # one row an operator released (exempt), one purged
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET status = 'released', exempt = true, "
                 "resolution = 'released by op' WHERE annotation_id = :a"),
            {"a": world.ids[back]},
        )  # fmt: skip
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET status = 'purged', resolved_at = :now "
                 "WHERE annotation_id = :a"),
            {"a": world.ids[purged], "now": world.clock.now},
        )  # fmt: skip
    gone = [a.metadata_key for a in anns[2 : 2 + size // 2]]
    chunks = [k for a in anns[2:4] for k in a.noise_keys if ".zarr/" in k][: size // 4]
    files = [f.key for f in anns[5].files if not f.is_prefix][:2]
    reconciler.apply_changes(removed(files[0]))  # a data file reported missing, created again below
    changes = removed(*gone, *chunks) + created(back, purged, files[0])
    changes += removed(*(f"10001/nowhere/Annotations/{i}/x-1.0.json" for i in range(size - len(changes))))
    statements: list[str] = []
    event.listen(reconciler.engine, "before_cursor_execute", lambda c, cur, s, *a: statements.append(s))
    result = reconciler.apply_changes(changes)
    assert len(changes) == size and len(statements) <= 3, statements
    assert result.quarantined == sorted(world.ids[k] for k in gone)
    assert result.resurrected == [(world.ids[purged], purged)]
    assert result.missing_files == len({k.split(".zarr/")[0] for k in chunks}) and result.restored_files == 1
    with world.engine.connect() as conn:
        exempt = conn.execute(
            text("SELECT exempt FROM annotation_reconciler.annotation_quarantine WHERE annotation_id = :a"),
            {"a": world.ids[back]},
        ).scalar_one()
        stamped = conn.execute(
            text("SELECT count(*) FROM annotation_reconciler.annotation_quarantine "
                 "WHERE status = 'quarantined' AND event_time = :t"),
            {"t": EVENT_TIME},
        ).scalar_one()  # fmt: skip
    assert exempt is False and stamped == len(gone)


def test_fresh_removals_are_two_statements_and_a_row_open_before_still_takes_the_newer_stamp(world: World) -> None:
    """Issue 30: a row the batch opens starts with its removal's stamp (no third statement); a row that was open
    already is stamped by the third, with the newer of its stamp and the removal's, as before."""
    reconciler = world.reconciler()
    first, second = world.portal.metadata_keys[:2]
    statements: list[str] = []
    event.listen(reconciler.engine, "before_cursor_execute", lambda c, cur, s, *a: statements.append(s))
    assert reconciler.apply_changes(removed(first)).quarantined == [world.ids[first]]
    assert len(statements) == 2
    later = EVENT_TIME + datetime.timedelta(minutes=5)
    statements.clear()
    assert reconciler.apply_changes(removed(first, at=later) + removed(second)).quarantined == [world.ids[second]]
    assert len(statements) == 3
    with world.engine.connect() as conn:
        stamps = dict(
            conn.execute(
                text("SELECT annotation_id, event_time FROM annotation_reconciler.annotation_quarantine")
            ).all()
        )
    assert stamps == {world.ids[first]: later, world.ids[second]: EVENT_TIME}
    # a Created between the two removals releases nothing: the row has seen the later removal
    between = EVENT_TIME + datetime.timedelta(minutes=1)
    assert reconciler.apply_changes(created(first, at=between)).released == []


def test_a_scan_writes_in_a_few_statements_and_stamps_releases_and_lapses_as_one_by_one(world: World) -> None:
    """Issue 30: a shard's scan reads the newest ledger row of every annotation it may write about once; a row it
    opens starts with its listing's stamp, a row open before takes the newer stamp, and the release and the lapse
    of exemptions are one statement, made only when an annotation with its key present has a ledger row."""
    reconciler = world.reconciler()
    dataset = world.portal.dataset_ids[0]
    keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == dataset]
    lone, back, exempt = keys[0], keys[1], keys[2]
    world.delete(lone)
    world.clock.advance(minutes=5)
    statements: list[str] = []
    event.listen(reconciler.engine, "before_cursor_execute", lambda c, cur, s, *a: statements.append(s))
    first = reconciler.scan_shard(Scope(dataset_id=dataset))
    assert first.quarantined == [world.ids[lone]] and first.released == []
    assert len(statements) <= 7, statements
    assert not any("SET status = 'released'" in s or "SET exempt = false" in s for s in statements)

    def stamps() -> dict[int, tuple[str, datetime.datetime | None, bool]]:
        with world.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT annotation_id, status, event_time, exempt FROM annotation_reconciler.annotation_quarantine"
                )
            ).all()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    assert stamps() == {world.ids[lone]: ("quarantined", world.clock.now, False)}
    reconciler.apply_changes(removed(back, exempt))  # removals at EVENT_TIME, their keys still in S3
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation_reconciler.annotation_quarantine SET status = 'released', exempt = true, "
                 "resolution = 'released by op' WHERE annotation_id = :a"),
            {"a": world.ids[exempt]},
        )  # fmt: skip
    world.clock.advance(minutes=5)
    statements.clear()
    second = reconciler.scan_shard(Scope(dataset_id=dataset))
    assert second.released == [world.ids[back]] and second.quarantined == []
    assert sum("SET status = 'released'" in s for s in statements) == 1  # with the lapse, in one statement
    assert stamps() == {
        world.ids[lone]: ("quarantined", world.clock.now, False),  # open before: the newer listing's stamp
        world.ids[back]: ("released", world.clock.now, False),
        world.ids[exempt]: ("released", EVENT_TIME, False),  # its exemption lapsed: the listing is newer
    }
