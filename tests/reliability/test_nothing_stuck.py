"""Nothing stuck, nothing silent (issue 27): one row or one file the reconciler cannot handle never stops a
period; what waits is counted, alarmed and explained. Real PostgreSQL, moto."""

from __future__ import annotations

import datetime
import json
import shlex
from typing import Any

import pytest
from sqlalchemy import text

from annotation_reconciler import handlers
from annotation_reconciler.ledger import missing_files
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange
from support.seed import put_objects
from support.wired import wire
from support.world import BUCKET, World, created, removed, s3_notification, sqs_event


@pytest.fixture
def world_spec() -> PortalSpec:
    return PortalSpec(datasets=3, runs_per_dataset=2, annotations_per_voxel_spacing=3)


def _one_key_per_dataset(world: World) -> list[str]:
    by_dataset: dict[str, str] = {}
    for key in sorted(world.portal.metadata_keys):
        by_dataset.setdefault(key.split("/")[0], key)
    return [by_dataset[d] for d in sorted(by_dataset)]


def _quarantine_and_wait(world: World, keys: list[str]) -> None:
    world.delete(*keys)
    world.reconciler().apply_changes(removed(*keys))
    world.clock.advance(hours=2)


def _block_with_a_foreign_key(world: World, annotation_id: int) -> None:
    """A portal table the reconciler does not know, pointing at the annotation (no cascade)."""
    with world.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE public.annotation_comment "
                "(id serial PRIMARY KEY, annotation_id int REFERENCES annotation(id))"
            )
        )
        conn.execute(text("INSERT INTO public.annotation_comment (annotation_id) VALUES (:a)"), {"a": annotation_id})


def _block_with_a_trigger(world: World, annotation_id: int) -> None:
    """A trigger that refuses to delete the annotations listed in a table of its own."""
    with world.engine.begin() as conn:
        conn.execute(text("CREATE TABLE public.kept (annotation_id int)"))
        conn.execute(text("INSERT INTO public.kept VALUES (:a)"), {"a": annotation_id})
        conn.execute(
            text(
                """CREATE FUNCTION public.keep_annotation() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN IF OLD.id IN (SELECT annotation_id FROM public.kept) THEN
                   RAISE EXCEPTION 'annotation % is kept', OLD.id; END IF; RETURN OLD; END $$"""
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER keep BEFORE DELETE ON annotation FOR EACH ROW EXECUTE FUNCTION public.keep_annotation()"
            )
        )


@pytest.mark.parametrize(
    ("block", "expected"), [(_block_with_a_foreign_key, "annotation_comment"), (_block_with_a_trigger, "is kept")]
)
def test_one_row_the_portal_will_not_let_go_never_stops_the_purge(world: World, block, expected: str) -> None:
    keys = _one_key_per_dataset(world)
    _quarantine_and_wait(world, keys)
    stuck = world.ids[keys[0]]
    block(world, stuck)
    reconciler = world.reconciler(purge_batch_size=10)

    result = reconciler.purge()

    assert result.failed == [stuck]
    assert sorted(result.deleted) == sorted(world.ids[k] for k in keys[1:])
    assert stuck in world.annotation_ids() and world.ledger()[stuck] == "quarantined"
    with world.engine.connect() as conn:
        error, failures = conn.execute(
            text(
                "SELECT purge_error, purge_failures FROM annotation_reconciler.annotation_quarantine "
                "WHERE annotation_id = :a"
            ),
            {"a": stuck},
        ).one()
    assert expected in error and failures == 1
    # the next period tries it again (after the others), fails again, and says so again
    world.clock.advance(hours=1)
    again = reconciler.purge()
    assert again.failed == [stuck] and again.deleted == []


def test_an_event_for_a_key_s3_accepts_but_the_reconciler_will_not_reason_about_is_counted_never_retried(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    wired = wire(world, monkeypatch)
    good = world.portal.metadata_keys[0]
    world.delete(good)
    poison = s3_notification(BUCKET, good.replace(".json", "\n.json"))
    mixed = s3_notification(BUCKET, good)
    mixed["Records"] = poison["Records"] + mixed["Records"]
    answer = handlers.handle_events(sqs_event(poison, mixed), LocalContext())
    assert answer == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[good]: "quarantined"}
    assert wired.metrics["EventKeysUnsafe"] == 2


def _gauges(wired: Any) -> dict[str, float]:
    wired.metrics.clear()
    handlers.handle_schedule({"action": "purge"}, LocalContext())
    return {k: wired.metrics[k] for k in GAUGES}


GAUGES = ("HeldWaiting", "PurgeRowsFailed", "UnknownWaiting", "QuarantineOverdue", "BlindPrefixes")


def test_every_waiting_state_is_a_gauge_each_period_and_status_explains_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed row, an undecidable one (a twin spelling in S3), a held dataset and a prefix over the page limit
    each wait; every purge emits every gauge (zero too, so an alarm clears only when the rows stop waiting),
    the overdue one once its grace plus one period has passed, and `status` explains each with its command."""
    wired = wire(world, monkeypatch, RECONCILER_SCAN_PAGE_LIMIT="1")
    assert _gauges(wired) == dict.fromkeys(GAUGES, 0)  # emitted though nothing waits
    failing, twin = _one_key_per_dataset(world)[:2]  # datasets 1 and 2; dataset 3 is held below
    _quarantine_and_wait(world, [failing, twin])
    folder, name = twin.rsplit("/", 1)
    world.s3.put_object(Bucket=BUCKET, Key=f"{folder}/{name.upper()}", Body=b"{}")  # another spelling only
    _block_with_a_foreign_key(world, world.ids[failing])
    held_dataset = sorted({a.dataset_id for a in world.portal.annotations})[2]
    held_keys = [a.metadata_key for a in world.portal.annotations if a.dataset_id == held_dataset]
    _quarantine_and_wait(world, held_keys)
    assert _gauges(wired) == {
        "HeldWaiting": len(held_keys),
        "PurgeRowsFailed": 1,
        "UnknownWaiting": 1,
        "QuarantineOverdue": 0,
        "BlindPrefixes": 0,
    }
    # a prefix with more LIST pages than the limit is blind at once (no retries: it would be over it again)
    crowded = world.portal.annotations[-1].metadata_key.rsplit("/", 2)[0] + "/"
    put_objects(world.s3, BUCKET, ((f"{crowded}100/extra-{i:04d}.ndjson", b"") for i in range(1001)))
    handlers.handle_work(sqs_event({"type": "scan_shard", "dataset_id": held_dataset}), LocalContext())
    assert wired.metrics["PrefixesBlind"] == 1 and wired.peek() == []
    world.clock.advance(days=1, hours=1)  # past grace + one period: the undecided rows are overdue
    assert _gauges(wired) == {
        "HeldWaiting": len(held_keys),
        "PurgeRowsFailed": 1,
        "UnknownWaiting": 1,
        "QuarantineOverdue": 2,
        "BlindPrefixes": 1,
    }
    report = handlers.handle_schedule({"action": "status"}, LocalContext())
    kinds = {w["annotation_id"]: (w["kind"], w["overdue"]) for w in report["waiting"]}
    assert kinds[world.ids[failing]] == ("failed", True) and kinds[world.ids[twin]] == ("unknown", True)
    assert {kinds[world.ids[k]] for k in held_keys} == {("held", False)}
    explained = {w["annotation_id"]: w for w in report["waiting"]}
    assert "annotation_comment" in explained[world.ids[failing]]["reason"]
    assert "spelling" in explained[world.ids[twin]]["reason"]
    assert all(
        w["key"] and w["next_command"].startswith(("annotation-reconciler", "remove")) for w in report["waiting"]
    )
    (blind,) = report["blind_prefixes"]
    assert blind["prefix"] == crowded and "RECONCILER_SCAN_PAGE_LIMIT" in blind["next_command"]


@pytest.mark.parametrize("source", ["eventbridge", "s3"])
def test_a_removal_within_the_second_of_the_purges_listing_is_not_judged_on_it(
    world: World, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """The key is back when the purge lists (12:00:00.200) and removed again at 12:00:00.700; EventBridge stamps
    that removal 12:00:00, which is not before the listing began: the row is left for the next purge, not
    released on a listing that may predate the removal (the S3 shape, 12:00:00.700, is plainly after it)."""
    (key,) = _one_key_per_dataset(world)[:1]
    _quarantine_and_wait(world, [key])
    world.restore(key)  # re-uploaded; its Created event is lost
    second = world.clock.now.replace(microsecond=0)
    world.clock.now = second + datetime.timedelta(milliseconds=200)
    reconciler = world.reconciler()
    listing = reconciler.storage.list_many

    def list_then_remove(*args: Any, **kwargs: Any) -> Any:
        found = listing(*args, **kwargs)
        world.delete(key)
        at = second if source == "eventbridge" else second + datetime.timedelta(milliseconds=700)
        reconciler.apply_changes([ObjectChange(BUCKET, key, ChangeKind.REMOVED, source, at, None)])
        return found

    monkeypatch.setattr(reconciler.storage, "list_many", list_then_remove)
    result = reconciler.purge()
    assert result.released == [] and world.ledger() == {world.ids[key]: "quarantined"}
    monkeypatch.undo()
    world.clock.advance(hours=1)  # the next purge lists afresh: the key is gone, the row is purged
    assert world.reconciler().purge().deleted == [world.ids[key]]


def test_both_event_shapes_in_one_second_lose_no_removal(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Removed by EventBridge (12:00:00) and a Created by S3 notification (12:00:00.300) in one batch: which
    came first cannot be told, so the removal stands and the row is quarantined (the purge re-checks S3)."""
    wire(world, monkeypatch)
    key = world.portal.metadata_keys[0]
    world.delete(key)
    bridge = {
        "source": "aws.s3",
        "detail-type": "Object Deleted",
        "time": "2026-01-01T00:00:00Z",
        "detail": {"bucket": {"name": BUCKET}, "object": {"key": key}},
    }
    note = s3_notification(BUCKET, key, "ObjectCreated:Put", "2026-01-01T00:00:00.300Z")
    assert handlers.handle_events(sqs_event(note, bridge), LocalContext()) == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[key]: "quarantined"}


# --- residue --------------------------------------------------------------------------------------------


def _open(world: World, table: str) -> int:
    with world.engine.connect() as conn:
        return conn.execute(
            text(f"SELECT count(*) FROM annotation_reconciler.{table} WHERE resolved_at IS NULL")  # noqa: S608
        ).scalar_one()


def test_purging_an_annotation_closes_its_missing_file_reports(world: World) -> None:
    ann = world.portal.annotations[0]
    data = next(
        k
        for k in world.portal.all_keys()
        if k.startswith(ann.metadata_key.rsplit("/", 1)[0] + "/") and k != ann.metadata_key
    )
    world.delete(data, ann.metadata_key)
    reconciler = world.reconciler()
    assert reconciler.apply_changes(removed(data)).missing_files == 1
    assert _open(world, "missing_annotation_file") == 1
    reconciler.apply_changes(removed(ann.metadata_key))
    world.clock.advance(hours=2)
    assert reconciler.purge().deleted == [world.ids[ann.metadata_key]]
    assert _open(world, "missing_annotation_file") == 0


def test_the_ingest_status_recommends_closes_the_resurrection(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from annotation_reconciler.cli.main import cli

    (key,) = _one_key_per_dataset(world)[:1]
    body = world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    _quarantine_and_wait(world, [key])
    reconciler = world.reconciler()
    listed = reconciler.storage.list_many

    def list_then_reupload(*args: Any, **kwargs: Any) -> Any:
        answer = listed(*args, **kwargs)
        # back before the DELETE: the purge deletes it anyway (S3 and SQL share no transaction)
        world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return answer

    monkeypatch.setattr(reconciler.storage, "list_many", list_then_reupload)
    assert reconciler.purge().deleted == [world.ids[key]]
    reconciler.apply_changes(created(key, at=world.clock.now))
    assert _open(world, "annotation_resurrection") == 1
    runner = CliRunner()
    report = json.loads(runner.invoke(cli, ["status", "--db-url", world.db_url, "--output", "json"]).output)
    command = report["resurrected"][0]["reingest"].replace("$RECONCILER_BUCKET", BUCKET)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    done = runner.invoke(cli, [*shlex.split(command)[1:], "--db-url", world.db_url], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert _open(world, "annotation_resurrection") == 0
    report = json.loads(runner.invoke(cli, ["status", "--db-url", world.db_url, "--output", "json"]).output)
    assert report["resurrected"] == []


def test_the_purge_prunes_closed_history_past_the_retention_and_keeps_what_still_matters(world: World) -> None:
    """Released, purged and closed report rows older than RECONCILER_LEDGER_RETENTION_DAYS go; an open row, an
    operator's release in force, a purged row an open resurrection names and recent history stay."""
    keys = sorted(world.portal.metadata_keys)
    released, exempt, resurrected, recent, still_open = keys[0], keys[3], keys[6], keys[9], keys[12]
    reconciler = world.reconciler(RECONCILER_LEDGER_RETENTION_DAYS="30", RECONCILER_RESURRECTION_DAYS="30")
    world.delete(released, exempt, resurrected)
    reconciler.apply_changes(removed(released, exempt, resurrected))
    reconciler.apply_changes(created(released))
    assert reconciler.release(world.ids[exempt], by="alice")
    world.clock.advance(hours=2)
    assert reconciler.purge().deleted == [world.ids[resurrected]]
    world.restore(resurrected)
    reconciler.apply_changes(created(resurrected, at=world.clock.now))
    world.clock.advance(days=31)
    world.delete(recent, still_open)
    reconciler.apply_changes(removed(recent, still_open, at=world.clock.now))
    reconciler.apply_changes(created(recent, at=world.clock.now + datetime.timedelta(seconds=1)))
    result = reconciler.purge()
    assert result.pruned == {"annotation_quarantine": 1}
    assert world.ledger() == {
        world.ids[exempt]: "released",
        world.ids[resurrected]: "purged",
        world.ids[recent]: "released",
        world.ids[still_open]: "quarantined",
    }


def test_the_events_path_finds_open_reports_through_an_index(world: World) -> None:
    """The open reports holding a key that is back (every events batch) are found through the GIN index, key by
    key, not by a scan of every open report (seconds a batch at 500k reports before it)."""
    with world.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO annotation_reconciler.missing_annotation_file "
                "(annotation_file_id, annotation_id, s3_path, removed_key, removed_keys, detected_at) "
                "SELECT n, n, 'p' || n, 'k' || n, ARRAY['k' || n, 'z' || n], now() FROM generate_series(1, 50000) n"
            )
        )
        conn.execute(text("ANALYZE annotation_reconciler.missing_annotation_file"))
    with world.engine.connect() as conn:
        plan = "\n".join(
            conn.execute(
                text(
                    "EXPLAIN SELECT DISTINCT r.id FROM unnest(CAST(:keys AS text[])) AS back(key) "
                    "CROSS JOIN LATERAL (SELECT x.id FROM annotation_reconciler.missing_annotation_file x "
                    "WHERE x.resolved_at IS NULL AND x.removed_keys @> ARRAY[back.key]) AS r"
                ),
                {"keys": [f"k{n}" for n in range(1, 501)]},
            ).scalars()
        )
    assert "Bitmap Index Scan on ix_missing_annotation_file_open_keys" in plan, plan
    # the reports of k1..k150 lose both their keys and close; those of k151..k300 lose one
    back = [f"k{n}" for n in range(1, 301)] + [f"z{n}" for n in range(1, 151)]
    with world.engine.begin() as conn:
        assert missing_files.resolve_missing_keys(conn, back, now=world.clock.now) == 150
