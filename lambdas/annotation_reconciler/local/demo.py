"""``make demo``: the reconciler end to end, event by event, on embedded defaults.

A throwaway PostgreSQL and a moto server on 127.0.0.1, a synthetic portal ingested by the
project's importer, bucket notifications to a local SQS queue, and the real Lambda handlers
driven by a local runtime. :func:`run_story` plays the story (``demo_story.py``, its scenes) and
returns the final counts, so a test can run it headless.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Engine, text

from annotation_reconciler.db import make_engine
from annotation_reconciler.db_import.service import ingest as import_dataset
from annotation_reconciler.local.databases import DatabaseFactory
from annotation_reconciler.local.demo_story import DEMO_MAX_PURGE_FRACTION, GRACE_SECONDS, Story, Summary
from annotation_reconciler.local.moto_server import LocalMotoServer
from annotation_reconciler.local.postgres import LocalPostgres
from annotation_reconciler.local.stack import LocalStack
from annotation_reconciler.local.synthetic import PortalSpec, SyntheticPortal, build_portal
from annotation_reconciler.local.synthetic_bucket import write_bucket
from annotation_reconciler.local.synthetic_rows import write_deposition
from annotation_reconciler.names import Env
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.plural import count
from annotation_reconciler.storage import S3Storage, make_s3_client

DEMO_SPEC = PortalSpec(
    datasets=3, runs_per_dataset=8, annotations_per_voxel_spacing=8, zarr_chunks_per_annotation=1, odd_run_names=True
)


def run_story(
    console: Console, *, sleep: Callable[[float], None] = time.sleep, spec: PortalSpec = DEMO_SPEC
) -> Summary:
    """Start PostgreSQL and moto, build and ingest the portal, play the story, stop everything."""
    with LocalPostgres() as pg, LocalMotoServer() as moto:
        console.rule("[bold]annotation-reconciler demo")
        console.print(f"PostgreSQL {pg.url}\nmoto S3/SQS {moto.endpoint_url}")
        url = DatabaseFactory(pg.url).fresh("portal")
        engine = make_engine(url)
        try:
            from annotation_reconciler.aws import make_client

            s3 = make_client("s3", endpoint_url=moto.endpoint_url, region="us-west-2")
            portal = build_portal(spec)
            with console.status("writing the synthetic portal to S3"):
                objects = write_bucket(s3, portal)
            ids = ingest(console, engine, moto.endpoint_url, portal)
            console.print(f"{count(objects, 'object')} in s3://{spec.bucket}, {count(len(ids), 'annotation')} ingested")
            stack = LocalStack.create(
                db_url=url,
                endpoint_url=moto.endpoint_url,
                bucket=spec.bucket,
                settings={
                    Env.DRY_RUN: "false",
                    Env.GRACE_PERIOD_HOURS: str(GRACE_SECONDS / 3600),
                    Env.ALLOW_SHORT_GRACE: "true",
                    Env.MAX_PURGE_FRACTION: DEMO_MAX_PURGE_FRACTION,
                },
            )
            stack.events.drain()  # the test event S3 sends when notifications are configured
            return Story(console, engine, stack, portal, ids, sleep).play()
        finally:
            engine.dispose()


def ingest(console: Console, engine: Engine, endpoint_url: str, portal: SyntheticPortal) -> dict[str, int]:
    """Ingest the portal from S3 with the project's importer; returns metadata key -> annotation id."""
    bucket = portal.spec.bucket
    storage = S3Storage(make_s3_client(endpoint_url=endpoint_url, region="us-west-2"), bucket)
    write_deposition(engine, portal.spec)  # the portal's deposition import comes first: ingest refuses without it
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("ingesting", total=len(portal.dataset_ids))
        for dataset_id in portal.dataset_ids:
            result = import_dataset(engine, storage, BucketLayout(bucket), dataset_id)
            if not result.ok:
                raise RuntimeError(f"ingestion of dataset {dataset_id} failed: {result.problems}")
            progress.advance(task)
    layout = BucketLayout(bucket)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, s3_metadata_path FROM annotation")).all()
    return {key: row_id for row_id, path in rows if (key := layout.to_key(path)) is not None}


def main(argv: list[str] | None = None) -> int:
    console = Console()
    try:
        summary = run_story(console)
    except KeyboardInterrupt:
        console.print("[red]interrupted: PostgreSQL and moto stopped")
        return 130
    console.print("[green]done: PostgreSQL and moto stopped")
    return 0 if summary.purged == summary.expected_purged else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["Summary", "main", "run_story"]
