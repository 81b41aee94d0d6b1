"""``annotation-reconciler local``: the local Lambda runtime against any PostgreSQL and S3-compatible endpoint."""

from __future__ import annotations

import time

import click

from annotation_reconciler.cli import sandbox
from annotation_reconciler.cli.common import UsageError, db_options, dry_run_from, engine_from
from annotation_reconciler.local.lambda_runtime import Timer
from annotation_reconciler.local.stack import LocalStack
from annotation_reconciler.names import Env


@click.group("local", invoke_without_command=True)
@db_options
@click.option("--endpoint-url", help="S3/SQS-compatible endpoint, e.g. a moto server.")
@click.option("--bucket", help="The bucket whose notifications drive the reconciler.")
@click.option("--dry-run/--no-dry-run", default=None, help=f"Default: ${Env.DRY_RUN}; unset: dry run.")
@click.option("--grace-period-hours", type=float, default=72.0, show_default=True)
@click.option("--purge-every", type=float, default=60.0, show_default=True, help="Seconds between purges.")
@click.option("--duration", type=float, default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
def local(
    db_url: str | None,
    db_secret_arn: str | None,
    endpoint_url: str | None,
    bucket: str | None,
    dry_run: bool | None,
    grace_period_hours: float,
    purge_every: float,
    duration: float,
) -> None:
    """Wire the bucket's notifications to a local queue and run the real handlers on it; or `local up` /
    `local down`: a PostgreSQL and a moto server with a synthetic portal, kept running to try commands on."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    if not endpoint_url or not bucket:
        raise UsageError("local needs --endpoint-url and --bucket (or `local up` for a sandbox to try commands on)")
    dry = dry_run_from(dry_run, default=True)
    engine_from(db_url, db_secret_arn).dispose()  # fail early, with one clear line, on a bad URL or secret
    database = {} if db_url else {Env.DB_SECRET_ARN: db_secret_arn or ""}
    stack = LocalStack.create(
        db_url=db_url or "",
        endpoint_url=endpoint_url,
        bucket=bucket,
        settings={
            Env.DRY_RUN: str(dry.on).lower(),
            Env.GRACE_PERIOD_HOURS: str(grace_period_hours),
            Env.ALLOW_SHORT_GRACE: "true",
            **database,
        },
    )
    purge = Timer(purge_every, lambda: stack.schedule("purge"))
    click.echo(f"listening to s3://{bucket} events via {stack.events.queue_url} ({dry}); Ctrl-C stops")
    stop_at = time.monotonic() + duration if duration else None
    try:
        while stop_at is None or time.monotonic() < stop_at:
            for outcome in stack.events.drain(max_polls=10):
                click.echo(f"events: {outcome.received} received, {outcome.failed} failed -> {outcome.result}")
            answer = purge.tick()
            if answer:
                click.echo(f"purge: {answer.get('purge')}")
    except KeyboardInterrupt:
        click.echo("stopped")


local.add_command(sandbox.up)
local.add_command(sandbox.down)
