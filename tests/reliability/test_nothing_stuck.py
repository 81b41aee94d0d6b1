"""Nothing stuck, nothing silent (issue 27): one row or one file the reconciler cannot handle never stops a
period; what waits is counted, alarmed and explained. Real PostgreSQL, moto."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from sqlalchemy import text

from annotation_reconciler import handlers
from annotation_reconciler.events import ChangeKind, ObjectChange
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.local.synthetic import PortalSpec
from support.wired import wire
from support.world import BUCKET, World, removed, s3_notification, sqs_event


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
    for i in range(1001):
        world.s3.put_object(Bucket=BUCKET, Key=f"{crowded}100/extra-{i:04d}.ndjson", Body=b"")
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
    listing = reconciler.list_prefixes

    def list_then_remove(prefixes: Any) -> Any:
        found = listing(prefixes)
        world.delete(key)
        at = second if source == "eventbridge" else second + datetime.timedelta(milliseconds=700)
        reconciler.apply_changes([ObjectChange(BUCKET, key, ChangeKind.REMOVED, source, at, None)])
        return found

    monkeypatch.setattr(reconciler, "list_prefixes", list_then_remove)
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
