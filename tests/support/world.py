"""A small portal in moto S3 and the real PostgreSQL, with a clock the test controls."""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, text

from annotation_reconciler import handlers
from annotation_reconciler.local.synthetic import PortalSpec, SyntheticPortal, build_portal
from annotation_reconciler.local.synthetic_rows import write_rows
from annotation_reconciler.portal.deletion import count_orphans as orphans_in
from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.service.runtime import Runtime, build_runtime
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage
from support.seed import seed_bucket

BUCKET = "cryoet-data-portal-public"
CHILD_TABLES = ("annotation_shape", "annotation_file", "annotation_author", "annotation_method_link")
#: the annotation and the rows a deletion takes with it
ANNOTATION_TABLES = ("annotation", *CHILD_TABLES)
#: every portal table the importer writes
PORTAL_TABLES = ("dataset", "run", "tomogram_voxel_spacing", *ANNOTATION_TABLES)
#: the time of the events the helpers below build unless told otherwise (the Clock's start)
EVENT_TIME = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@dataclass
class Clock:
    now: datetime.datetime = field(default_factory=lambda: datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += datetime.timedelta(**delta)


@dataclass
class World:
    engine: Engine
    s3: Any
    portal: SyntheticPortal
    ids: dict[str, int]
    clock: Clock
    db_url: str

    def env(self, **env: str) -> dict[str, str]:
        """The reconciler's environment for this world (deleting for real, one hour of grace), plus ``env``."""
        base = {
            "RECONCILER_DB_URL": self.db_url,
            "RECONCILER_BUCKET": BUCKET,
            "RECONCILER_DRY_RUN": "false",
            "RECONCILER_GRACE_PERIOD_HOURS": "1",
            "RECONCILER_MAX_PURGE_FRACTION": "0.5",
            "AWS_DEFAULT_REGION": "us-west-2",
        }
        return {**base, **env}

    def settings(self, **env: str) -> Settings:
        return Settings.from_env(self.env(**env))

    def runtime(self, monkeypatch: pytest.MonkeyPatch, **env: str) -> Runtime:
        """The Lambda handlers' runtime, as a cold start builds it from :meth:`env`, on this world's clock;
        the handlers use it for the rest of the test."""
        runtime = build_runtime(self.env(**env))
        runtime.reconciler.context = dataclasses.replace(runtime.reconciler.context, clock=self.clock)
        return use_runtime(monkeypatch, runtime)

    def reconciler(self, s3: Any = None, *, purge_batch_size: int | None = None, **env: str) -> Reconciler:
        """A reconciler on this world's clock, with ``env`` over the world's settings (and, if given, purge
        batches of ``purge_batch_size`` rows instead of the service's default)."""
        batch = {} if purge_batch_size is None else {"purge_batch_size": purge_batch_size}
        return Reconciler(
            Context(self.engine, S3Storage(s3 or self.s3, BUCKET), self.settings(**env), clock=self.clock, **batch)
        )

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.s3.delete_object(Bucket=BUCKET, Key=key)

    def restore(self, *keys: str) -> None:
        for key in keys:
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")

    def annotation_ids(self) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.execute(text("SELECT id FROM annotation")).scalars())

    def ledger(self) -> dict[int, str]:
        """annotation id -> status of its newest ledger row."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT annotation_id, status FROM annotation_reconciler.annotation_quarantine ORDER BY id")
            ).all()
        return {r[0]: r[1] for r in rows}

    def children_of(self, annotation_ids: set[int]) -> int:
        ids = list(annotation_ids)
        with self.engine.connect() as conn:
            return conn.execute(
                text("""SELECT (SELECT count(*) FROM annotation_shape WHERE annotation_id = ANY(CAST(:ids AS int[])))
                             + (SELECT count(*) FROM annotation_author WHERE annotation_id = ANY(CAST(:ids AS int[])))
                             + (SELECT count(*) FROM annotation_method_link
                                WHERE annotation_id = ANY(CAST(:ids AS int[])))"""),
                {"ids": ids},
            ).scalar_one()

    def orphans(self) -> int:
        return count_orphans(self.engine)


#: In a SELECT over ``annotation_reconciler.annotation_quarantine q``: the newest deletion snapshot of the row's
#: annotation, from the audit (the only place a snapshot is kept since migration 0006).
SNAPSHOT = (
    "(SELECT d.snapshot FROM annotation_reconciler_audit.deleted_annotation d "
    "WHERE d.annotation_id = q.annotation_id ORDER BY d.id DESC LIMIT 1) AS snapshot"
)


def count_orphans(engine: Engine) -> int:
    """Child rows whose parent is gone (the portal's foreign keys would refuse them; count anyway)."""
    with engine.connect() as conn:
        return orphans_in(conn)


def table_counts(engine: Engine, tables: tuple[str, ...] = ANNOTATION_TABLES) -> dict[str, int]:
    """Rows per table, in one statement: compare before and after to prove what a step wrote or deleted."""
    counts = ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in tables)  # noqa: S608 (the names above)
    with engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT {counts}")).mappings().one())


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the portal's annotation tables, in id order: compare before and after to prove what changed."""
    with engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM public.{t} ORDER BY id"))]  # noqa: S608
            for t in ANNOTATION_TABLES
        }


def removed(*keys: str, at: datetime.datetime = EVENT_TIME) -> list[ObjectChange]:
    """ObjectRemoved changes of ``keys`` in the portal bucket, as the events parser returns them."""
    return [ObjectChange(BUCKET, k, ChangeKind.REMOVED, "s3", at, None) for k in keys]


def created(*keys: str, at: datetime.datetime = EVENT_TIME + datetime.timedelta(seconds=1)) -> list[ObjectChange]:
    """ObjectCreated changes of ``keys`` (by default one second after :data:`EVENT_TIME`)."""
    return [ObjectChange(BUCKET, k, ChangeKind.CREATED, "s3", at, None) for k in keys]


def use_runtime(monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> Runtime:
    """Make the Lambda handlers use ``runtime`` (as a cold start would build it) for this test."""
    monkeypatch.setattr(handlers.common, "runtime_factory", lambda: runtime)
    return runtime


def make_world(engine: Engine, s3: Any, db_url: str, spec: PortalSpec | None = None) -> World:
    portal = build_portal(spec or PortalSpec(datasets=2, runs_per_dataset=3, annotations_per_voxel_spacing=4))
    seed_bucket(s3, portal)
    ids = write_rows(engine, portal)
    return World(engine, s3, portal, ids, Clock(), db_url)


def s3_notification(
    bucket: str,
    key: str,
    name: str = "ObjectRemoved:Delete",
    when: str = "2026-01-01T00:00:00.000Z",
    sequencer: str | None = None,
) -> dict[str, Any]:
    from urllib.parse import quote_plus

    obj: dict[str, Any] = {"key": quote_plus(key), "size": 10}
    if sequencer:
        obj["sequencer"] = sequencer
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-west-2",
        "eventTime": when,
        "eventName": name,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj},
    }
    return {"Records": [record]}


def sqs_event(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    records = []
    for i, body in enumerate(bodies):
        records.append(
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "eventSource": "aws:sqs",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "awsRegion": "us-west-2",
                "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:events",
            }
        )
    return {"Records": records}
