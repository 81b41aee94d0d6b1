"""The bad-input corpus (tests/data/bad_events, tests/data/bad_config): every item gets a clear error or a
counted skip, and nothing is quarantined or deleted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from sqlalchemy import Engine

from annotation_reconciler import handlers
from annotation_reconciler.events import MAX_RECORDS_PER_MESSAGE, EventShapeError, parse_event
from annotation_reconciler.local.lambda_runtime import LocalContext
from annotation_reconciler.runtime import build_runtime
from annotation_reconciler.settings import Settings, SettingsError
from support.world import BUCKET, World, make_world, s3_notification, sqs_event

DATA = Path(__file__).parent.parent / "data"
EVENTS = sorted((DATA / "bad_events").glob("*.json"))
CONFIGS = sorted((DATA / "bad_config").glob("*.json"))


@pytest.fixture
def world(engine: Engine, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> World:
    w = make_world(engine, s3, db_url)
    runtime = build_runtime({"RECONCILER_DB_URL": db_url, "RECONCILER_BUCKET": BUCKET, "RECONCILER_DRY_RUN": "false"})
    monkeypatch.setattr(handlers, "runtime_factory", lambda: runtime)
    return w


def test_the_corpus_is_large_enough() -> None:
    assert len(EVENTS) >= 20 and len(CONFIGS) >= 15


@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
def test_bad_event_is_rejected_or_skipped_and_changes_nothing(path: Path, world: World) -> None:
    case = json.loads(path.read_text())
    event, expect = case["event"], case["expect"]
    before = world.annotation_ids()
    if expect == "error":
        if (
            event.get("Records")
            and isinstance(event["Records"], list)
            and event["Records"][0].get("eventSource") == "aws:sqs"
        ):
            answer = handlers.handle_events(event, LocalContext())
            assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
            assert parse_event(event).messages[0].error  # a sentence saying what is wrong
        else:
            with pytest.raises(EventShapeError) as info:
                handlers.handle_events(event, LocalContext())
            assert any(w in str(info.value) for w in ("expected", "must", "needs", "lacks"))
    elif expect.startswith("skip:"):
        parsed = parse_event(event)
        assert [s.reason for s in parsed.skips] == [expect.split(":")[1]] and parsed.changes == []
        answer = handlers.handle_events(event, LocalContext())
        assert answer == (
            {"batchItemFailures": []} if parsed.kind == "sqs" else {"changes": 0, "quarantined": 0, "released": 0}
        )
    else:
        reason = expect.split(":")[1]
        result = world.reconciler().apply_changes(parse_event(event).changes)
        if reason == "unmatched":
            assert len(result.unmatched_keys) == 1
        elif reason == "data_file":
            assert result.missing_files == 0 and result.ignored == {}
        else:
            assert result.ignored == {reason: 1}
        assert handlers.handle_events(event, LocalContext()) == {"batchItemFailures": []}
    assert world.ledger() == {} and world.annotation_ids() == before


def test_text_that_is_not_json_at_all() -> None:
    raw = (DATA / "bad_events" / "not_json_at_all.txt").read_text()
    with pytest.raises(EventShapeError):
        parse_event(raw)  # type: ignore[arg-type]


def test_huge_message_is_rejected_alone(world: World) -> None:
    key = world.portal.metadata_keys[0]
    world.delete(key)
    record = s3_notification(BUCKET, key)["Records"][0]
    huge = {"Records": [record] * (MAX_RECORDS_PER_MESSAGE + 1)}
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
    answer = handlers.handle_events(sqs_event(*bodies), LocalContext())
    assert answer == {"batchItemFailures": []}
    assert world.ledger() == {world.ids[k]: "quarantined" for k in keys}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_absurd_config_is_refused_with_what_to_fix(path: Path) -> None:
    case = json.loads(path.read_text())
    env = {"RECONCILER_DB_URL": "postgresql+pg8000://u@db/portal", "RECONCILER_BUCKET": BUCKET, **case["env"]}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert case["message"] in str(info.value)
    variable = next(iter(case["env"]))
    assert variable in str(info.value)


def test_url_encoded_key_with_plus_space_and_unicode_maps(world: World) -> None:
    odd = "10001/TS 1+2 é/Reconstructions/VoxelSpacing13.480/Annotations/100/ribosome-1.0.json"
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
    assert parse_event(event).changes[0].key == odd
