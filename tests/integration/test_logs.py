"""Logs: every line a Lambda invocation writes is JSON with its correlation id, the stdlib loggers' lines
included. Real PostgreSQL, moto S3."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import pytest
from sqlalchemy import Engine

from annotation_reconciler.local.synthetic import PortalSpec
from support.logs import handler_logs
from support.world import BUCKET, make_world


def test_every_log_line_of_an_invocation_is_json_with_its_correlation_id(
    engine: Engine, s3: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:

    from annotation_reconciler import handlers
    from annotation_reconciler.local.lambda_runtime import LocalContext
    from annotation_reconciler.service.runtime import build_runtime
    from support.world import s3_notification, sqs_event

    small = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=5, annotations_per_voxel_spacing=5))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    env = {**os.environ, "RECONCILER_DB_URL": small.db_url, "RECONCILER_BUCKET": BUCKET, "RECONCILER_DRY_RUN": "true"}
    runtime = build_runtime({**env, "RECONCILER_GRACE_PERIOD_HOURS": "1", "RECONCILER_MAX_PURGE_FRACTION": "1"})
    runtime.reconciler.context = dataclasses.replace(runtime.reconciler.context, clock=small.clock)
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
    stdlib = [x for x in logs if x.get("name") == "annotation_reconciler.service.purge"]
    assert stdlib and all(x["correlation_id"] == "evt-42" for x in stdlib)
    assert all("correlation_id" in x for x in logs)
