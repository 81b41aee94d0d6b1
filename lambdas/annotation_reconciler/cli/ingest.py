"""``annotation-reconciler ingest``: import a dataset from S3 into the portal tables, cleaning up stale annotations.

    annotation-reconciler ingest --bucket cryoet-data-portal-public --dataset-id 10001 --dry-run

Exit 0 when every scope was read and imported, 1 when a scope had problems (its cleanup was
skipped), 2 on bad usage or configuration.
"""

from __future__ import annotations

from collections import Counter

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

from annotation_reconciler.cli import documents
from annotation_reconciler.cli.common import (
    UsageError,
    db_options,
    dry_run_from,
    engine_from,
    layout_from,
    settings_from,
)
from annotation_reconciler.cli.terminal import print_rows, progress_bar
from annotation_reconciler.db_import import IngestResult, service
from annotation_reconciler.db_import.base import public_https_prefix
from annotation_reconciler.errors import LedgerMissingError
from annotation_reconciler.names import Env
from annotation_reconciler.portal.models import PORTAL_TABLES
from annotation_reconciler.rules.ordering import utcnow
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.plural import count
from annotation_reconciler.service.purge import close_reingested
from annotation_reconciler.storage import S3Storage, make_s3_client


@click.command("ingest")
@click.option("--bucket", required=True, envvar=Env.BUCKET, help=f"The portal bucket (default: ${Env.BUCKET}).")
@click.option("--dataset-id", type=int, required=True, help="The dataset to import.")
@click.option("--run-name", help="Import this run only.")
@click.option("--voxel-spacing", type=float, help="Import this voxel spacing only (e.g. 13.48).")
@click.option("--s3-prefix", default="", help="Where the portal's keys start: s3://BUCKET/ROOT/ (default: the bucket).")
@click.option(
    "--https-prefix",
    help="HTTPS prefix of stored paths (default: the one the dataset's rows already use, else "
    "https://BUCKET.s3.amazonaws.com/).",
)
@click.option(
    "--dry-run/--no-dry-run",
    default=None,
    help=f"Compute every change, write nothing (default: ${Env.DRY_RUN}; unset: write).",
)
@db_options
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", help="S3-compatible endpoint (local tests).")
@click.option("--anonymous", is_flag=True, help="Read the bucket without credentials (the public bucket allows it).")
@click.option(
    "--cleanup/--no-cleanup",
    default=None,
    help=f"Remove the stale annotations of each imported voxel spacing (default: ${Env.IMPORTER_CLEANUP}, true).",
)
@click.option(
    "--max-purge-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    envvar=Env.MAX_PURGE_FRACTION,
    default=0.1,
    show_default=True,
    help="Hold (not delete) a dataset's stale annotations beyond this fraction of it, as the purge does.",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def ingest(
    bucket: str,
    dataset_id: int,
    run_name: str | None,
    voxel_spacing: float | None,
    s3_prefix: str,
    https_prefix: str | None,
    dry_run: bool | None,
    db_url: str | None,
    db_secret_arn: str | None,
    endpoint_url: str | None,
    anonymous: bool,
    cleanup: bool | None,
    max_purge_fraction: float,
    output: str,
) -> None:
    """Import a dataset's runs, voxel spacings and annotations from S3; remove the stale annotations.

    A stale annotation is one of the imported voxel spacing (or a legacy row of its run whose files
    lie in it) whose metadata is no longer in S3. A voxel spacing whose listing or any metadata read
    failed is imported as far as it was read, and none of its rows is removed.
    """
    layout = layout_from("--bucket", bucket, s3_prefix)
    dry = dry_run_from(dry_run, default=False)
    settings = settings_from(
        {
            Env.BUCKET: ("--bucket", bucket),
            Env.S3_PREFIX: ("--s3-prefix", s3_prefix),
            Env.IMPORTER_CLEANUP: ("--cleanup/--no-cleanup", cleanup),
            Env.MAX_PURGE_FRACTION: ("--max-purge-fraction", max_purge_fraction),
        }
    )
    if https_prefix is not None and not https_prefix.startswith(("https://", "http://")):
        raise UsageError(f"--https-prefix={https_prefix!r} is not a URL: use e.g. {public_https_prefix(bucket)}")
    engine = engine_from(db_url, db_secret_arn)
    if https_prefix is None:
        try:
            https_prefix = stored_https_prefix(engine, layout, dataset_id)
        except BaseException:
            engine.dispose()
            raise
    storage = S3Storage(make_s3_client(anonymous=anonymous, endpoint_url=endpoint_url), bucket)
    try:
        with progress_bar("voxel spacings") as bar:
            result = service.ingest(
                engine,
                storage,
                layout,
                dataset_id,
                run_name,
                https_prefix,
                dry.on,
                bar,
                voxel_spacing=voxel_spacing,
                cleanup=settings.importer_cleanup,
                max_purge_fraction=settings.max_purge_fraction,
            )
        if not dry.on:  # a resurrection this ingest brought back is closed (issue 27)
            with engine.begin() as conn:
                close_reingested(conn, layout, now=utcnow())
    except LedgerMissingError as exc:
        raise UsageError(str(exc)) from None
    finally:
        engine.dispose()
    if output == "json":
        click.echo(documents.dumps(documents.ingest(result)))
        click.echo(str(dry), err=True)
    else:
        print_result(Console(), result)
        click.echo(str(dry))
    if not result.ok:
        raise SystemExit(1)


_RUN_PREFIXES = text("SELECT s3_prefix, https_prefix FROM run WHERE dataset_id = :d ORDER BY id")


def stored_https_prefix(engine: Engine, layout: BucketLayout, dataset_id: int) -> str | None:
    """The HTTPS prefix the dataset's rows already use (the most common among its runs: each run's
    ``https_prefix`` is it followed by the run's key), so re-ingesting unchanged data rewrites no path; ``None``
    for a dataset with no runs yet (the bucket's public URL is then used)."""
    with engine.connect() as conn:
        rows = conn.execute(_RUN_PREFIXES, {"d": dataset_id}).all()
    found: Counter[str] = Counter()
    for s3_prefix, https in rows:
        key = layout.to_key(s3_prefix)
        if key and https and https.endswith(key) and len(https) > len(key):
            found[https[: -len(key)]] += 1
    return found.most_common(1)[0][0] if found else None


def print_result(console: Console, result: IngestResult) -> None:
    """The summary table, then removed annotations, skipped cleanups, legacy rows and problems."""
    verbs = ("would insert", "would update", "would remove") if result.dry_run else ("inserted", "updated", "removed")
    title = f"dataset {result.dataset_id}" + (" (dry run: nothing written)" if result.dry_run else "")
    table = Table("table", *verbs, title=title)
    lines = [f"{title}:"]
    for name in PORTAL_TABLES:
        counts = (result.inserted[name], result.updated[name], result.removed[name])
        if any(counts):
            table.add_row(name, *(str(c) for c in counts))
            lines.append(f"  {name}: " + ", ".join(f"{verb} {c}" for verb, c in zip(verbs, counts, strict=True)))
    if len(lines) == 1:
        lines.append("  no row to insert, update or remove")
    print_rows(console, table, lines)
    click.echo(
        f"{count(len(result.voxel_spacings), 'voxel spacing')}, "
        f"{count(sum(r.metadata_read for r in result.voxel_spacings), 'annotation metadata file')} read"
    )
    for report in result.voxel_spacings:
        if report.deleted:
            verb = "would remove" if result.dry_run else "removed"
            click.echo(f"{report.prefix}: {verb} stale annotations {report.deleted}")
    for report in result.voxel_spacings:
        if report.held:
            click.echo(
                f"{report.prefix}: held stale annotations {report.held} for an operator "
                "(`annotation-reconciler status`, then `approve --dataset-id N`)"
            )
        for annotation_id, why in report.left_in_place[:20]:
            click.echo(f"annotation {annotation_id} left in place: {why}")
        if report.cleanup_off:
            click.echo(f"{report.prefix}: sibling cleanup not run ({report.cleanup_off})")
    for prefix in result.skipped_scopes:
        click.echo(f"cleanup skipped for {prefix}: S3 was not read completely, nothing removed there")
    for row in result.legacy:
        click.echo(
            f"legacy annotation {row.id} ({row.annotation_ingest_id}) of run {row.run_id} left in place: {row.reason}"
        )
    for problem in result.problems:
        click.echo(f"error: {problem}")
