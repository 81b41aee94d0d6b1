"""The bad-input corpus (tests/data/bad_events, tests/data/bad_config): every item gets a clear error or a
counted skip, and nothing is quarantined or deleted.

An event case is ``{"expect": ..., "event": ...}`` with ``expect`` one of ``error`` (the message fails alone,
or a direct invocation raises; ``message`` is then a fragment of the error), ``skip:<reason>`` (parsed and
counted as skipped) or ``ignored:<reason>`` (parsed, then counted as ignored by the reconciler; ``count``
such changes, 1 by default). ``repeat_records: N`` repeats each SQS message's one record N times, ``{n}``
in its key becoming the copy's number: the huge batches are written out at run time, not stored.
A config case is ``{"env": ..., "message": ...}``: the variable and a fragment of the refusal.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from sqlalchemy import event, text

from annotation_reconciler import handlers
from annotation_reconciler.errors import EventShapeError, SettingsError
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.rules.notifications import parse_event
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.settings import Settings
from support.world import BUCKET, World, s3_notification, sqs_event

DATA = Path(__file__).parent.parent / "data"
EVENTS = sorted((DATA / "bad_events").glob("*.json"))
CONFIGS = sorted((DATA / "bad_config").glob("*.json"))
#: The annotations the corpus's keys name (or imitate); their metadata is gone from S3 in every case, so
#: that an event wrongly accepted would quarantine them and a purge would delete them.
TARGETS = (
    "10001/TS_000/Reconstructions/VoxelSpacing13.480/Annotations/100/ribosome-1.0.json",
    "10002/TS_000/Reconstructions/VoxelSpacing13.480/Annotations/100/ribosome-1.0.json",
)


SPEC = PortalSpec(datasets=2, runs_per_dataset=1, annotations_per_voxel_spacing=3, zarr_chunks_per_annotation=0)


@pytest.fixture
def world_spec() -> PortalSpec:
    return SPEC


@pytest.fixture
def world(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The shared world, its handlers wired (no fraction guard), and the targets' metadata gone from S3."""
    world.runtime(monkeypatch, RECONCILER_MAX_PURGE_FRACTION="1")
    assert set(TARGETS) <= set(world.ids)
    world.delete(*TARGETS)
    return world


def expand(event: Any, repeat: int) -> Any:
    """Repeat the one record of every SQS message body ``repeat`` times ({n} in the key: the copy's number)."""
    event = copy.deepcopy(event)
    for message in event["Records"]:
        body = json.loads(message["body"])
        (record,) = body["Records"]
        template = record["s3"]["object"]["key"]
        body["Records"] = []
        for n in range(repeat):
            one = copy.deepcopy(record)
            one["s3"]["object"]["key"] = template.replace("%7Bn%7D", str(n))
            body["Records"].append(one)
        message["body"] = json.dumps(body)
    return event


def test_the_corpus_is_large_enough() -> None:
    assert len(EVENTS) >= 40 and len(CONFIGS) >= 25


@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
def test_bad_event_is_rejected_or_skipped_and_changes_nothing(path: Path, world: World) -> None:
    case = json.loads(path.read_text())
    event, expect = case["event"], case["expect"]
    if "repeat_records" in case:
        event = expand(event, case["repeat_records"])
    before = world.annotation_ids()
    is_sqs = isinstance(event.get("Records"), list) and bool(event["Records"])
    is_sqs = is_sqs and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in event["Records"])
    if expect == "error":
        if is_sqs:
            answer = handlers.handle_events(event, LocalContext())
            assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
            error = parse_event(event).messages[0].error
        else:
            with pytest.raises(EventShapeError) as info:
                handlers.handle_events(event, LocalContext())
            error = str(info.value)
        assert error and case.get("message", "") in error  # a sentence saying what is wrong
        if "message" not in case:
            assert any(w in error for w in ("expected", "must", "needs", "lacks", "has", "not"))
    elif expect.startswith("skip:"):
        parsed = parse_event(event)
        assert [s.reason for s in parsed.skips] == [expect.split(":")[1]] and parsed.changes == []
        answer = handlers.handle_events(event, LocalContext())
        assert answer == ({"batchItemFailures": []} if is_sqs else {"changes": 0, "quarantined": 0, "released": 0})
    else:
        reason, count = expect.split(":")[1], case.get("count", 1)
        result = world.reconciler().apply_changes(parse_event(event).changes)
        if reason == "unmatched":
            assert len(result.unmatched_keys) == count
        elif reason == "data_file":
            assert result.missing_files == 0 and result.ignored == {}
        else:
            assert result.ignored == {reason: count}
        assert result.quarantined == [] and result.released == []
        assert handlers.handle_events(event, LocalContext()) == {"batchItemFailures": []}
    assert world.ledger() == {}
    world.clock.advance(hours=2)
    assert handlers.handle_schedule({"action": "purge"}, LocalContext())["purge"]["deleted"] == 0
    assert world.annotation_ids() == before


def test_text_that_is_not_json_at_all() -> None:
    raw = (DATA / "bad_events" / "not_json_at_all.txt").read_text()
    with pytest.raises(EventShapeError):
        parse_event(raw)  # type: ignore[arg-type]


def test_huge_message_is_rejected_alone(world: World) -> None:
    key = TARGETS[0]
    huge = json.loads(expand(sqs_event(s3_notification(BUCKET, key)), 1001)["Records"][0]["body"])
    answer = handlers.handle_events(sqs_event(huge, s3_notification(BUCKET, key)), LocalContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert world.ledger() == {world.ids[key]: "quarantined"}


def test_huge_batch_maps_in_one_go(world: World) -> None:
    """Ten messages of a thousand records each (10,000 events, most for unknown keys) map with one query."""
    keys = world.portal.metadata_keys[:5]
    world.delete(*keys)
    bodies = []
    for m in range(10):
        records = [
            s3_notification(BUCKET, f"10001/TS_{m}/Reconstructions/VoxelSpacing1.000/Annotations/{n}/x-1.json")[
                "Records"
            ][0]
            for n in range(995)
        ]
        records += [s3_notification(BUCKET, k)["Records"][0] for k in keys]
        bodies.append({"Records": records})
    runtime = handlers.common.runtime_factory()
    statements: list[str] = []
    event.listen(runtime.engine, "before_cursor_execute", lambda c, cur, s, *a: statements.append(s))
    answer = handlers.handle_events(sqs_event(*bodies), LocalContext())
    assert answer == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[k]: "quarantined" for k in keys}
    assert len([s for s in statements if "WHERE a.s3_metadata_path = ANY" in s]) == 1


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_absurd_config_is_refused_with_what_to_fix(path: Path) -> None:
    case = json.loads(path.read_text())
    env = {"RECONCILER_DB_URL": "postgresql+pg8000://u@db/portal", "RECONCILER_BUCKET": BUCKET, **case["env"]}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert case["message"] in str(info.value)
    variable = next(iter(case["env"]))
    assert variable in str(info.value)


@pytest.mark.parametrize(
    "prefix", ["s3://cryoet-data-portal-public/wrong-root/", "portal/", "cryoet-data-portal-public/10003/"]
)
def test_a_wrong_but_well_formed_prefix_decides_nothing(world: World, prefix: str) -> None:
    """A prefix that parses but does not match the stored paths: every annotation is unknown (counted),
    events are ignored as outside the prefix (counted), and nothing is quarantined or deleted."""
    reconciler = world.reconciler(RECONCILER_S3_PREFIX=prefix)
    scan = reconciler.scan_shard(Scope(dataset_id=10001))
    assert scan.quarantined == [] and scan.held == [] and len(scan.unknown) == scan.annotations == 3
    changes = parse_event(sqs_event(*(s3_notification(BUCKET, k) for k in TARGETS))).changes
    applied = reconciler.apply_changes(changes)
    assert applied.quarantined == [] and applied.ignored == {"outside_prefix": 2}
    world.clock.advance(hours=2)
    assert reconciler.purge().claimed == 0 and world.ledger() == {}
    assert world.annotation_ids() == set(world.ids.values())


def test_url_encoded_key_with_plus_space_and_unicode_maps(world: World) -> None:
    """S3 notifications URL-encode keys (a space as ``+``, a real ``+`` as ``%2B``, UTF-8 as ``%C3%A9``): the
    decoded key is the one the annotation row stores, so the event quarantines exactly that annotation."""
    odd = "10001/TS 1+2 é/Reconstructions/VoxelSpacing13.480/Annotations/101/ribosome-1.0.json"
    target = next(i for k, i in world.ids.items() if k.startswith("10001/") and k not in TARGETS)
    with world.engine.begin() as conn:
        conn.execute(
            text("UPDATE annotation SET s3_metadata_path = :p WHERE id = :id"),
            {"p": f"s3://{BUCKET}/{odd}", "id": target},
        )
    event = sqs_event(
        {
            "Records": [
                {
                    **s3_notification(BUCKET, "x")["Records"][0],
                    "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(odd)}},
                }
            ]
        }
    )
    assert "TS+1%2B2+%C3%A9" in quote_plus(odd)
    assert parse_event(event).changes[0].key == odd
    answer = handlers.handle_events(event, LocalContext())
    assert answer == {"batchItemFailures": []}
    assert world.ledger() == {target: "quarantined"}
