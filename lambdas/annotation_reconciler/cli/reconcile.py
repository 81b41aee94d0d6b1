"""The reconciliation's commands on the same core as the Lambdas: scan (LIST shards or an S3 Inventory) and purge."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from annotation_reconciler.cli import documents
from annotation_reconciler.cli.common import (
    db_options,
    dry_run_from,
    engine_from,
    nothing_found_line,
    settings_from,
)
from annotation_reconciler.cli.terminal import print_rows, progress_bar
from annotation_reconciler.ledger import waiting
from annotation_reconciler.ledger.status import reingest_command
from annotation_reconciler.names import Env
from annotation_reconciler.rules.plural import count
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.plan import plan_shards
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.service.results import ScanResult
from annotation_reconciler.storage import S3Storage, make_s3_client

console = Console()


def reconciler_from(
    db_url: str | None,
    db_secret_arn: str | None,
    bucket: str | None,
    s3_prefix: str | None,
    dry_run: bool | None,
    endpoint_url: str | None,
    anonymous: bool = False,
) -> tuple[Reconciler, Engine]:
    settings = settings_from(
        {
            Env.BUCKET: ("--bucket", bucket),
            Env.S3_PREFIX: ("--s3-prefix", s3_prefix),
            Env.DRY_RUN: ("--dry-run", dry_run),
            Env.DB_URL: ("--db-url", db_url),
            Env.DB_SECRET_ARN: ("--db-secret-arn", db_secret_arn),
        },
        require_db=True,
    )
    engine = engine_from(settings.db_url, settings.db_secret_arn)
    storage = S3Storage(
        make_s3_client(endpoint_url=endpoint_url, max_pool_connections=settings.s3_concurrency, anonymous=anonymous),
        settings.bucket,
    )
    return Reconciler(Context(engine, storage, settings)), engine


def common_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--bucket", help=f"The portal bucket (default: ${Env.BUCKET})."),
            click.option("--s3-prefix", help="The prefix stored paths use (default: s3://BUCKET/)."),
            click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", help="S3-compatible endpoint (local tests)."),
            click.option(
                "--anonymous", is_flag=True, help="Read the bucket without credentials (the public bucket allows it)."
            ),
        ]
    ):
        fn = option(fn)
    return db_options(fn)


@click.command()
@common_options
@click.option("--dataset-id", type=int, help="Reconcile one dataset (default: every dataset, shard by shard).")
@click.option("--inventory", help="Use this S3 Inventory (s3://…/manifest.json or its prefix) instead of LISTs.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
def scan(
    db_url: str | None,
    db_secret_arn: str | None,
    bucket: str | None,
    s3_prefix: str | None,
    endpoint_url: str | None,
    anonymous: bool,
    dataset_id: int | None,
    inventory: str | None,
    output: str,
) -> None:
    """Full reconciliation: LIST annotation prefixes, quarantine what is stale, release what is back."""
    reconciler, engine = reconciler_from(db_url, db_secret_arn, bucket, s3_prefix, None, endpoint_url, anonymous)
    if inventory:
        found = reconciler.reconcile_inventory(inventory)
        engine.dispose()
        if output == "json":
            click.echo(
                documents.dumps(
                    {
                        "manifest": found.manifest,
                        "report_time": found.report_time.isoformat(),
                        "annotations": found.annotations,
                        "candidates": found.candidates,
                        "quarantined": found.quarantined,
                        "unknown": [{"annotation_id": u.ref.id, "why": u.why} for u in found.unknown],
                        "untracked": found.untracked,
                    }
                )
            )
            return
        for key in found.untracked:
            click.echo(f"untracked metadata: {key} (no annotation row points to it)")
        click.echo(
            f"{found.manifest} ({found.report_time:%Y-%m-%d %H:%M}): {count(found.annotations, 'annotation')}, "
            f"{found.candidates} missing from the inventory, {len(found.quarantined)} confirmed absent "
            f"and quarantined, {len(found.unknown)} unknown"
        )
        return
    shards = [Scope(dataset_id=dataset_id)] if dataset_id is not None else plan_shards(engine)
    results = []
    with progress_bar("scanning", len(shards)) as bar:
        for shard in shards:
            results.append(reconciler.scan_shard(shard))
            bar.advance(f"dataset {shard.dataset_id}")
    engine.dispose()
    if output == "json":
        click.echo(documents.dumps({"shards": [documents.scan_shard(r) for r in results]}))
    else:
        print_scan(results)
    annotations = sum(r.annotations for r in results)
    if annotations and not sum(r.present for r in results):
        reasons = [f"annotation {u.ref.id}: {u.why}" for r in results for u in r.unknown[:1]]
        reasons += [
            f"{count(r.stale, 'metadata key')} absent from "
            f"{count(r.prefixes_listed, 'listed prefix', 'listed prefixes')}"
            for r in results
            if r.stale
        ]
        click.echo(
            "Error: "
            + nothing_found_line(
                reconciler.settings.bucket,
                reconciler.settings.s3_prefix,
                annotations,
                reasons[0] if reasons else "no metadata listed",
                "--bucket and --s3-prefix (a wrong bucket or prefix is far likelier than a whole scope deleted)",
            ),
            err=True,
        )
        raise SystemExit(1)
    if any(r.errors for r in results):
        raise SystemExit(1)


SCAN_COLUMNS = ("annotations", "present", "stale", "quarantined", "released", "held", "unknown")


def print_scan(results: list[ScanResult]) -> None:
    """A table on a wide terminal, else one line per shard; S3 errors and keys on lines of their own, unwrapped."""
    rows = []
    for r in results:
        label = f"dataset {r.scope.dataset_id}" + (f" runs {list(r.scope.run_ids)}" if r.scope.run_ids else "")
        counts = (r.annotations, r.present, r.stale, len(r.quarantined), len(r.released), len(r.held), len(r.unknown))
        rows.append((label, counts))
    table = Table("shard", *SCAN_COLUMNS)
    for label, counts in rows:
        table.add_row(label, *(str(c) for c in counts))
    lines = [
        f"{label}: "
        + ", ".join(
            count(c, "annotation") if name == "annotations" else f"{c} {name}"
            for name, c in zip(SCAN_COLUMNS, counts, strict=True)
        )
        for label, counts in rows
    ]
    print_rows(console, table, lines)
    for r in results:
        label = f"dataset {r.scope.dataset_id}"
        for error in r.errors:
            click.echo(f"S3 error: {error}")
        for prefix in r.over_page_limit:
            click.echo(f"unknown: {prefix} needs more LIST pages than {Env.SCAN_PAGE_LIMIT}")
        if r.missing_files or r.restored_files:
            click.echo(
                f"{label}: {count(r.missing_files, 'data file')} newly missing, {r.restored_files} back (see status)"
            )
        for annotation_id, key in r.moved:
            click.echo(f"annotation {annotation_id} moved to {key}; re-point it: {reingest_command(key)}")
        for key in r.untracked:
            click.echo(
                f"untracked metadata: {key} (no annotation row points to it); ingest it: {reingest_command(key)}"
            )


@click.command()
@common_options
@click.option("--dry-run/--no-dry-run", default=None, help=f"Override {Env.DRY_RUN} (default: dry run).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def purge(
    db_url: str | None,
    db_secret_arn: str | None,
    bucket: str | None,
    s3_prefix: str | None,
    endpoint_url: str | None,
    anonymous: bool,
    dry_run: bool | None,
    output: str,
) -> None:
    """Delete quarantined annotations past their grace period, after re-checking S3."""
    dry = dry_run_from(dry_run, default=True)
    reconciler, engine = reconciler_from(db_url, db_secret_arn, bucket, s3_prefix, dry.on, endpoint_url, anonymous)
    try:
        with engine.connect() as conn:
            total = waiting.due(conn, now=reconciler.clock())
        with progress_bar("purging", total) as bar:
            r = reconciler.purge(progress=lambda rows: bar.advance("purging", rows))
    finally:
        engine.dispose()
    if output == "json":
        click.echo(documents.dumps(documents.purge(r)))
        click.echo(str(dry), err=True)
        return
    verb = "would purge" if r.dry_run else "purged"
    click.echo(
        f"claimed {r.claimed}: {verb} {len(r.would_delete if r.dry_run else r.deleted)}, "
        f"released {len(r.released)}, held {len(r.held)}, unknown {len(r.unknown)}"
    )
    click.echo(str(dry))
    for annotation_id, new_key in r.moved:
        click.echo(
            f"annotation {annotation_id} moved to {new_key} (it carries the annotation's natural key); "
            f"not deleted. Re-point it: {reingest_command(new_key)}"
        )
    for dataset_id, (open_rows, total) in r.held_datasets.items():
        click.echo(
            f"held: dataset {dataset_id} would lose {open_rows} of {count(total, 'annotation')}; "
            f"check, then run `annotation-reconciler approve --dataset-id {dataset_id}`"
        )
