"""Benchmark 2: the event path, deletion events through ``handlers.handle_events`` in SQS batches of 10 and 100.

The deployed path is S3 -> EventBridge -> SQS -> the events Lambda, so every SQS message body is one
EventBridge ``Object Deleted`` event. Two streams, each on a fresh copy of a 10k-annotation portal:

- ``metadata``: the metadata files of 2,000 annotations are deleted (one event each);
- ``folders``: 100 annotation folders are deleted whole, 21 events each (metadata, ndjson, mrc,
  .zattrs, caption JSON and 16 zarr chunks), so data-file events (recorded as missing files) are
  mixed in as they would be.

The handler runs as in Lambda: Powertools logging at INFO and metrics on (their output goes to
/dev/null), tracing off (no X-Ray daemon here). The runtime is injected through
``handlers.common.runtime_factory`` with an S3 double that must see no request::

    .venv/bin/python -m bench.bench_events
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text

from annotation_reconciler.db import make_engine
from annotation_reconciler.local.synthetic import SyntheticAnnotation
from annotation_reconciler.names import SERVICE, Env, Powertools
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage
from bench.measure import SqlCounter
from bench.portal import BUCKET, copy_database, load_rows, portal_chunks, portal_spec, run_alone
from bench.report import BenchContext, Section, fmt_s
from bench.s3double import S3Double

PORTAL_SIZE = 10_000
BATCHES = (10, 100)
METADATA_EVENTS = 2_000
FOLDERS = 100


def _quiet_powertools() -> None:
    os.environ.setdefault(Powertools.TRACE_DISABLED, "true")
    os.environ.setdefault(Powertools.LOG_LEVEL, "INFO")
    os.environ.setdefault(Powertools.SERVICE_NAME, SERVICE)


def eventbridge_deleted(key: str, n: int) -> dict[str, Any]:
    """The EventBridge event S3 sends for a deleted object."""
    return {
        "version": "0",
        "id": str(uuid.UUID(int=n)),
        "detail-type": "Object Deleted",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-west-2",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": key, "sequencer": f"{n:016X}"},
            "request-id": f"R{n:015d}",
            "requester": "123456789012",
            "reason": "DeleteObject",
            "deletion-type": "Permanently Deleted",
        },
    }


def sqs_batch(bodies: list[dict[str, Any]], first: int) -> dict[str, Any]:
    """An SQS event as Lambda's event source mapping delivers it."""
    records = [
        {
            "messageId": str(uuid.UUID(int=first + i)),
            "receiptHandle": f"handle-{first + i}",
            "body": json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:annotation-reconciler-events",
            "awsRegion": "us-west-2",
        }
        for i, body in enumerate(bodies)
    ]
    return {"Records": records}


#: The stream the event path's targets are about (run_all.targets): one metadata file's deletion per event.
METADATA_STREAM = "metadata files"


def streams(annotations: list[SyntheticAnnotation]) -> dict[str, tuple[list[str], int]]:
    """Each stream's deleted keys, and how many annotations it must quarantine."""
    step = len(annotations) // METADATA_EVENTS
    metadata = [a.metadata_key for a in annotations[::step][:METADATA_EVENTS]]
    folders: list[str] = []
    for a in annotations[step // 2 :: len(annotations) // FOLDERS][:FOLDERS]:
        folders.append(a.metadata_key)
        folders += [f.key for f in a.files if not f.is_prefix]
        folders += list(a.noise_keys)
    return {METADATA_STREAM: (metadata, len(metadata)), "whole annotation folders": (folders, FOLDERS)}


def _chunks(items: list[str], size: int) -> Iterator[tuple[int, list[str]]]:
    for i in range(0, len(items), size):
        yield i, items[i : i + size]


def run(ctx: BenchContext) -> list[Section]:
    _quiet_powertools()
    from annotation_reconciler import handlers
    from annotation_reconciler.local.lambda_runtime import LocalContext
    from annotation_reconciler.service.runtime import Runtime

    spec = portal_spec(PORTAL_SIZE)
    template = "events_template"
    url = ctx.factory.fresh(template)
    engine = make_engine(url)
    load_rows(engine, spec)
    engine.dispose()
    annotations = [a for chunk in portal_chunks(spec) for a in chunk.annotations]
    original_factory = handlers.common.runtime_factory
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    handler = getattr(handlers.logger, "registered_handler", None)
    if handler is not None and hasattr(handler, "setStream"):
        handler.setStream(devnull)

    out = Section(
        "events",
        f"2. Event path: deletion events through handle_events ({PORTAL_SIZE:,}-annotation portal)",
        [
            "stream",
            "SQS batch",
            "events",
            "invocations",
            "events / s",
            "batch latency p50 / p95 / max",
            "SQL / batch (min-max)",
            "DB time / batch",
            "S3 requests",
            "quarantined",
            "missing files",
        ],
    )
    try:
        for stream, (keys, expected) in streams(annotations).items():
            for batch in BATCHES:
                name = f"events_{batch}"
                db_url = copy_database(ctx.factory, template, name)
                engine = make_engine(db_url)
                sql = SqlCounter.attach(engine)
                settings = Settings.from_env({Env.DB_URL: db_url, Env.BUCKET: BUCKET, Env.DRY_RUN: "false"})
                double = S3Double()
                runtime = Runtime(
                    settings, engine, Reconciler(Context(engine, S3Storage(double, BUCKET), settings)), None
                )
                handlers.common.runtime_factory = lambda runtime=runtime: runtime
                events = [sqs_batch([eventbridge_deleted(k, first + i) for i, k in enumerate(part)], first)
                          for first, part in _chunks(keys, batch)]  # fmt: skip
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                latencies: list[float] = []
                statements: list[int] = []
                db_times: list[float] = []
                failures = 0
                with contextlib.redirect_stdout(devnull):
                    for event in events:
                        s0, _, d0 = sql.snapshot()
                        started = time.perf_counter()
                        answer = handlers.handle_events(event, LocalContext())
                        latencies.append(time.perf_counter() - started)
                        s1, _, d1 = sql.snapshot()
                        statements.append(s1 - s0)
                        db_times.append(d1 - d0)
                        failures += len(answer.get("batchItemFailures", []))
                with engine.connect() as conn:
                    quarantined = conn.execute(
                        text("SELECT count(*) FROM annotation_reconciler.annotation_quarantine")
                    ).scalar_one()
                    missing = conn.execute(
                        text("SELECT count(*) FROM annotation_reconciler.missing_annotation_file")
                    ).scalar_one()
                engine.dispose()
                ctx.factory.drop(name)
                if failures or quarantined != expected or double.counts:
                    raise AssertionError(
                        f"{stream}/{batch}: {failures} failures, {quarantined} quarantined (expected {expected}), "
                        f"S3 {dict(double.counts)}"
                    )
                total = sum(latencies)
                q = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else latencies * 19
                rates = ctx.facts.setdefault("events_per_s", {})
                rates[(stream, batch)] = len(keys) / total
                ctx.facts.setdefault("events_sql_per_batch", {})[(stream, batch)] = max(statements)
                out.add(
                    stream,
                    batch,
                    f"{len(keys):,}",
                    len(events),
                    f"{len(keys) / total:,.0f}",
                    f"{fmt_s(statistics.median(latencies))} / {fmt_s(q[18])} / {fmt_s(max(latencies))}",
                    f"{min(statements)}-{max(statements)}",
                    fmt_s(sum(db_times) / len(db_times)),
                    sum(double.counts.values()),
                    f"{quarantined:,}",
                    f"{missing:,}",
                )
    finally:
        handlers.common.runtime_factory = original_factory
        devnull.close()
        ctx.factory.drop(template)
    out.notes += [
        "Measured, in one process, handler call by call (parsing, the batch's one mapping query, the ledger writes, "
        "Powertools logging and metrics). events / s = events / the sum of handler times; SQS polling is not in it.",
        "The engine sets TCP_NODELAY (db.make_engine): without it a statement whose parameters pass pg8000's 8 KiB "
        "write buffer waited for the server's delayed ACK (tens of milliseconds).",
        "A whole-folder deletion maps data-file events (zarr chunks to their zarr) to annotation_file rows and "
        "records them as missing files; the caption JSON is no file row and is counted as unmatched.",
    ]
    return [ctx.emit(out)]


def main() -> None:
    run_alone(run, __doc__)


if __name__ == "__main__":
    main()
