"""The demo's story: its scenes, each narrated, acted through S3 and the Lambda handlers, and shown.

``demo.py`` sets the stage (PostgreSQL, moto, the ingested portal) and plays :class:`Story`; the
:class:`Summary` it returns holds the final counts.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

from annotation_reconciler.local.stack import LocalStack
from annotation_reconciler.local.synthetic import SyntheticPortal
from annotation_reconciler.names import Env
from annotation_reconciler.rules.paths import BucketLayout, KeyKind, classify_key
from annotation_reconciler.rules.plural import count
from annotation_reconciler.settings import DEFAULT_MAX_PURGE_FRACTION

TABLES = ("annotation", "annotation_shape", "annotation_file", "annotation_author", "annotation_method_link")
STATUSES = ("quarantined", "released", "held", "purged", "restored")
GRACE_SECONDS = 2.0
#: the demo's guard: scene 3 purges a whole run (8 of a dataset's 64); scene 6 runs at the shipped default
DEMO_MAX_PURGE_FRACTION = "0.2"
SHIPPED_MAX_PURGE_FRACTION = f"{DEFAULT_MAX_PURGE_FRACTION:g}"


@dataclass
class Summary:
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    ledger: dict[str, int] = field(default_factory=dict)
    stale_left: int = -1  # annotations left in the database whose metadata is not in S3
    expected_purged: set[int] = field(default_factory=set)
    purged: set[int] = field(default_factory=set)


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608


def ledger_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows: dict[str, int] = dict(
            conn.execute(
                text("SELECT status, count(*) FROM annotation_reconciler.annotation_quarantine GROUP BY 1")
            ).all()
        )
    return {s: int(rows.get(s, 0)) for s in STATUSES}


class Story:
    """The demo's scenes; each narrates, acts through S3 and the handlers, and shows the result."""

    def __init__(
        self,
        console: Console,
        engine: Engine,
        stack: LocalStack,
        portal: SyntheticPortal,
        ids: dict[str, int],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.console, self.engine, self.stack, self.portal, self.ids = console, engine, stack, portal, ids
        self.bucket = portal.spec.bucket
        self.sleep = sleep
        self.summary = Summary()

    def say(self, title: str, body: str = "") -> None:
        self.console.rule(f"[bold cyan]{title}")
        if body:
            self.console.print(body)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.stack.s3.delete_object(Bucket=self.bucket, Key=key)

    def deliver(self) -> int:
        """Let the local event source mapping drain the events queue into handle_events."""
        return sum(o.received for o in self.stack.events.drain())

    def ledger_table(self, title: str) -> None:
        table = Table(title=title)
        for status in STATUSES:
            table.add_column(status, justify="right")
        row = ledger_counts(self.engine)
        table.add_row(*(str(row[s]) for s in STATUSES))
        self.console.print(table)

    def status_of(self, keys: list[str]) -> dict[int, str]:
        ids = [self.ids[k] for k in keys]
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT DISTINCT ON (annotation_id) annotation_id, status FROM "
                    "annotation_reconciler.annotation_quarantine"
                    " WHERE annotation_id = ANY(CAST(:ids AS int[])) ORDER BY annotation_id, id DESC"
                ),
                {"ids": ids},
            ).all()
        return {r[0]: r[1] for r in rows}

    def wait_grace(self) -> None:
        self.console.print(f"[dim]… letting the grace period ({GRACE_SECONDS:.0f} s for the demo) pass")
        self.sleep(GRACE_SECONDS + 0.5)

    def play(self) -> Summary:
        annotations = self.portal.annotations
        self.summary.before = counts(self.engine)
        run = [a for a in annotations if a.dataset_id == 10001 and a.run_name == "TS_002"]
        singles = [annotations[0], annotations[9], annotations[70]]
        self.say(
            "1. Annotation metadata disappears from S3",
            f"Deleting {count(len(singles), 'metadata file')} and a whole run ({count(len(run), 'annotation')} of "
            "10001/TS_002).",
        )
        removed = [a.metadata_key for a in singles + run]
        self.delete(removed)
        self.console.print(f"S3 sent {count(self.deliver(), 'notification')} through SQS to handle_events.")
        self.ledger_table("Quarantine after the events")

        back = singles[1]
        self.say("2. One file comes back", f"Re-uploading {back.metadata_key}")
        self.stack.s3.put_object(Bucket=self.bucket, Key=back.metadata_key, Body=b"{}")
        self.deliver()
        self.console.print(
            f"annotation {self.ids[back.metadata_key]} is now "
            f"[green]{self.status_of([back.metadata_key])[self.ids[back.metadata_key]]}"
        )

        self.say("3. The grace period passes; the schedule purges")
        self.wait_grace()
        answer = self.stack.schedule("purge")
        self.summary.expected_purged |= {self.ids[k] for k in removed if k != back.metadata_key}
        self.console.print(f"handle_schedule(purge) -> {answer['purge']}")
        self.ledger_table("Quarantine after the purge")

        dataset = [a.metadata_key for a in annotations if a.dataset_id == 10003]
        self.say(
            "4. A whole dataset vanishes: the mass-deletion guard holds it",
            f"Deleting all {count(len(dataset), 'metadata file')} of dataset 10003.",
        )
        self.delete(dataset)
        self.deliver()
        self.wait_grace()
        answer = self.stack.schedule("purge")
        self.console.print(f"handle_schedule(purge) -> {answer['purge']}  [yellow](held: nothing deleted)")
        self.console.print(
            "An operator would now check the bucket and run "
            "`annotation-reconciler approve --dataset-id 10003`, or restore the files."
        )

        lost = annotations[100]
        self.say(
            "5. A lost event: the full reconciliation finds it",
            f"Deleting {lost.metadata_key} and dropping its notification.",
        )
        self.delete([lost.metadata_key])
        self.stack.sqs.purge_queue(QueueUrl=self.stack.events.queue_url)
        answer = self.stack.schedule("reconcile")
        shards = sum(o.received for o in self.stack.work.drain())
        self.console.print(
            f"handle_schedule(reconcile) queued {count(answer['shards_queued'], 'shard')}; handle_work scanned "
            f"{shards}."
        )
        self.console.print(
            f"annotation {self.ids[lost.metadata_key]} is now "
            f"[yellow]{self.status_of([lost.metadata_key])[self.ids[lost.metadata_key]]}"
        )
        self.wait_grace()
        self.stack.schedule("purge")
        self.summary.expected_purged.add(self.ids[lost.metadata_key])
        self.ordinary_retraction_and_undo()

        self.say("7. The same flow in dry run deletes nothing")
        self.stack.configure(RECONCILER_DRY_RUN="true")
        dry = annotations[30]
        self.delete([dry.metadata_key])
        self.deliver()
        self.wait_grace()
        answer = self.stack.schedule("purge")
        self.console.print(
            f"dry run: handle_schedule(purge) -> {answer['purge']}; "
            f"annotation {self.ids[dry.metadata_key]} is still in the database."
        )
        self.stack.configure(RECONCILER_DRY_RUN="false")
        return self.finish()

    def drop_events(self) -> int:
        """Lose the pending notifications (SQS allows one PurgeQueue a minute: receive and delete them)."""
        url, dropped = self.stack.events.queue_url, 0
        while messages := self.stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                self.stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            dropped += len(messages)
        return dropped

    def ordinary_retraction_and_undo(self) -> None:
        """At the shipped guard (0.1), one annotation retracted whole (its folder: metadata and data files)
        while its events are lost; the rest of its run and dataset is in S3, so it is ordinary: the scan
        quarantines it and the purge deletes it without approval. Then it is restored."""
        self.stack.configure(RECONCILER_MAX_PURGE_FRACTION=SHIPPED_MAX_PURGE_FRACTION)
        undo = next(a for a in self.portal.annotations if a.dataset_id == 10002 and a.run_name == "TS_003")
        folder = undo.metadata_key.rsplit("/", 1)[0] + "/"  # .../Annotations/100/
        keys = [k for k in self.portal.all_keys() if k.startswith(folder)]  # the metadata key too
        self.say(
            "6. An ordinary retraction is purged without approval, then undone",
            f"At the shipped guard ({Env.MAX_PURGE_FRACTION}={SHIPPED_MAX_PURGE_FRACTION}): deleting "
            f"{undo.metadata_key} and its annotation's folder ({count(len(keys), 'object')}), losing the "
            "notifications; the rest of the run and of dataset 10002 is still in S3.",
        )
        self.delete(keys)
        self.drop_events()
        self.stack.schedule("reconcile")
        self.stack.work.drain()
        status = self.status_of([undo.metadata_key])[self.ids[undo.metadata_key]]
        self.console.print(f"the scan: {status} (one annotation gone from a healthy run)")
        self.wait_grace()
        answer = self.stack.schedule("purge")
        self.console.print(f"handle_schedule(purge) -> {answer['purge']}  [green](no operator needed)")
        undo_id = self.ids[undo.metadata_key]
        from annotation_reconciler.service.restore import RestoreScope, restore

        with self.engine.begin() as conn:
            done = restore(conn, RestoreScope(annotation_id=undo_id), by="demo", now=_now(), dry_run=False)
        self.console.print(
            f"`annotation-reconciler restore --annotation-id {undo_id} --no-dry-run` put back "
            f"{', '.join(f'{n} {t}' for t, n in done.rows.items())}; its files are uploaded again."
        )
        for key in keys:
            self.stack.s3.put_object(Bucket=self.bucket, Key=key, Body=b"{}")
        self.deliver()
        self.stack.configure(RECONCILER_MAX_PURGE_FRACTION=DEMO_MAX_PURGE_FRACTION)

    def finish(self) -> Summary:
        s = self.summary
        s.after, s.ledger = counts(self.engine), ledger_counts(self.engine)
        with self.engine.connect() as conn:
            s.purged = set(
                conn.execute(
                    text(
                        "SELECT annotation_id FROM annotation_reconciler.annotation_quarantine WHERE status = 'purged'"
                    )
                ).scalars()
            )
            paths = conn.execute(text("SELECT s3_metadata_path FROM annotation")).scalars().all()
        layout = BucketLayout.from_prefix(self.bucket)
        present = set()
        for page in self.stack.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            present |= {o["Key"] for o in page.get("Contents", []) if classify_key(o["Key"]) is KeyKind.METADATA}
        s.stale_left = sum(1 for p in paths if layout.to_key(p) not in present)
        table = Table(title="Rows before and after")
        table.add_column("table")
        table.add_column("before", justify="right")
        table.add_column("after", justify="right")
        for name in TABLES:
            table.add_row(name, str(s.before[name]), str(s.after[name]))
        for status in STATUSES:
            table.add_row(f"quarantine: {status}", "0", str(s.ledger[status]))
        self.say("8. The end")
        self.console.print(table)
        ok = s.purged == s.expected_purged
        self.console.print(f"purged exactly the expected annotations: {'[green]yes' if ok else '[red]NO'}")
        self.console.print(
            f"annotations left whose metadata is not in S3: {s.stale_left} (held for an operator, or kept by dry run)"
        )
        return s


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


__all__ = [
    "DEMO_MAX_PURGE_FRACTION",
    "GRACE_SECONDS",
    "STATUSES",
    "TABLES",
    "Story",
    "Summary",
    "counts",
    "ledger_counts",
]
