"""``cleanup-stale-annotations``: the spec's Phase 1 script, on the reconciler's core.

Existence is decided from listings of the scope's ``Annotations/`` prefixes (a few paginated
LISTs, never a HEAD per annotation, ``--s3-concurrency`` of them in flight at once). A stored
path that does not map into ``--s3-bucket`` is *unknown* and never deleted; an S3 error
stops the command before anything is deleted.
Deletion goes through the shared routine (children first, one transaction per batch, an
``annotation_quarantine`` row with source ``cli``)::

    python -m annotation_reconciler.cli.cleanup_stale_annotations --run-id 123 \\
        --s3-bucket cryoet-data-portal-staging --s3-prefix "s3://cryoet-data-portal-staging/"
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from annotation_reconciler.cli.cleanup_render import count_of, render_text, what_would_go
from annotation_reconciler.cli.common import (
    Command,
    check_environment,
    dry_run_from,
    engine_from,
    layout_from,
    nothing_found_line,
    operator_name,
    settings_from,
)
from annotation_reconciler.errors import CleanupError
from annotation_reconciler.names import Env
from annotation_reconciler.rules.plural import count
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.reconciler import Reconciler
from annotation_reconciler.service.results import CleanupResult
from annotation_reconciler.settings import DEFAULT_S3_CONCURRENCY, MAX_S3_CONCURRENCY
from annotation_reconciler.storage import S3Storage, make_s3_client
from annotation_reconciler.storage.counting import RequestCounter

log = logging.getLogger("annotation_reconciler.cleanup")


def _confirm(question: str) -> bool:
    return click.confirm(question, default=False, err=True)


def stops_with_click_error(command: Callable[..., None]) -> Callable[..., None]:
    """The service's CleanupError as click's error (``Error: ...`` on stderr, exit code 1)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except CleanupError as exc:
            raise click.ClickException(str(exc)) from exc

    return run


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="annotation-reconciler", prog_name="cleanup-stale-annotations")
@click.option("--dataset-id", type=int, help="Cleanup annotations for specific dataset")
@click.option("--run-id", type=int, help="Cleanup annotations for specific run")
@click.option("--voxel-spacing-id", type=int, help="Cleanup annotations for specific voxel spacing")
@click.option(
    "--dry-run/--no-dry-run",
    default=None,
    help=f"Show what would be deleted without deleting (default: ${Env.DRY_RUN}; unset: dry run)",
)
@click.option(
    "--db-uri",
    "--db-url",
    "db_uri",
    type=str,
    help=f"Database URI, password percent-encoded (default: ${Env.DB_URL}; --db-url is the same)",
)
@click.option(
    "--db-secret-arn",
    envvar=Env.DB_SECRET_ARN,
    help=f"Secrets Manager secret (RDS JSON) with the credentials (default: ${Env.DB_SECRET_ARN})",
)
@click.option("--s3-bucket", type=str, required=True, help="S3 bucket to check for files")
@click.option("--s3-prefix", type=str, default="", help="S3 prefix of stored paths (s3://BUCKET/ or BUCKET/ or ROOT/)")
@click.option("--anonymous", is_flag=True, default=False, help="Use anonymous S3 access")
@click.option(
    "--s3-concurrency",
    type=click.IntRange(1, MAX_S3_CONCURRENCY),
    envvar=Env.S3_CONCURRENCY,
    default=DEFAULT_S3_CONCURRENCY,
    show_default=True,
    help=f"S3 requests in flight at once (default: ${Env.S3_CONCURRENCY})",
)
@click.option("--yes", is_flag=True, default=False, help="Do not ask for confirmation (automation)")
@click.option(
    "--approve-held",
    is_flag=True,
    default=False,
    help="Also delete the held (suspicious) annotations without asking; --yes alone leaves them held",
)
@click.option("--by", default=operator_name, help="Who approves held annotations (for the audit; default $USER)")
@click.option(
    "--max-purge-fraction",
    type=click.FloatRange(0, 1, min_open=True),
    help="Hold a dataset's deletions when they exceed this fraction of its annotations, as every other path "
    f"does (default: ${Env.MAX_PURGE_FRACTION}, else 0.1); 1 lifts the guard",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", help="Report format")
@stops_with_click_error
def cleanup_stale_annotations(
    dataset_id: int | None,
    run_id: int | None,
    voxel_spacing_id: int | None,
    dry_run: bool | None,
    db_uri: str | None,
    db_secret_arn: str | None,
    s3_bucket: str,
    s3_prefix: str,
    anonymous: bool,
    s3_concurrency: int,
    yes: bool,
    approve_held: bool,
    by: str,
    max_purge_fraction: float | None,
    output: str,
) -> None:
    """Identify and delete stale annotations whose metadata files no longer exist in S3."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)  # every deletion is logged; botocore's chatter is not
    check_environment()
    layout_from("--s3-bucket", s3_bucket, s3_prefix)
    dry = dry_run_from(dry_run, default=True)
    dry_run = dry.on
    settings = settings_from(
        {
            Env.BUCKET: ("--s3-bucket", s3_bucket),
            Env.S3_PREFIX: ("--s3-prefix", s3_prefix),
            Env.DRY_RUN: ("--dry-run", dry_run),
            Env.S3_CONCURRENCY: ("--s3-concurrency", s3_concurrency),
            Env.MAX_PURGE_FRACTION: ("--max-purge-fraction", max_purge_fraction),
        }
    )
    max_fraction = settings.max_purge_fraction
    scope = Scope.of(dataset_id=dataset_id, run_id=run_id, voxel_spacing_id=voxel_spacing_id)
    if scope.is_everything:
        click.echo("Warning: no --dataset-id, --run-id or --voxel-spacing-id: every annotation is checked.", err=True)
        if not yes and not _confirm("Scan every annotation in the database?"):
            raise click.Abort()
    engine = engine_from(db_uri, db_secret_arn, option="--db-uri")
    client = make_s3_client(anonymous=anonymous, max_pool_connections=s3_concurrency)
    counter = RequestCounter.attach(client)
    reconciler = Reconciler(Context(engine, S3Storage(client, s3_bucket), settings))
    report = CleanupResult(
        bucket=s3_bucket, s3_prefix=s3_prefix, scope=scope, dry_run=dry_run, dry_run_decided_by=dry.decided_by
    )
    try:
        reconciler.cleanup_survey(report, max_fraction)
        report.s3_requests = dict(counter.counts)
        if output == "text":
            click.echo(render_text(report))
            click.echo(str(dry))
        if report.annotations and not report.present and (dry_run or not approve_held):
            if output == "json":
                click.echo(json.dumps(report.to_json(), indent=2))
            raise CleanupError(
                nothing_found_line(
                    s3_bucket,
                    settings.s3_prefix,
                    report.annotations,
                    report.first_reason(),
                    "--s3-bucket and --s3-prefix (a wrong bucket or prefix is far likelier than a whole scope "
                    "deleted); nothing deleted"
                    + ("" if dry_run else ", unless --approve-held says the whole scope is meant to go"),
                )
            )
        if report.stale and not dry_run:
            approve = _confirm_deletion(report, yes, approve_held)
            reconciler.cleanup_delete(report, approved_by=by if approve else None, max_fraction=max_fraction)
            report.s3_requests = dict(counter.counts)
    finally:
        engine.dispose()
    if output == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    elif dry_run and report.stale:
        click.echo("\nDry run mode: No deletions performed.\nRun with --no-dry-run to perform deletions.")
    elif not dry_run and report.stale:
        kept = f" ({len(report.released)} kept: their metadata is back in S3)" if report.released else ""
        rows = ", ".join(f"{t} {n}" for t, n in sorted(report.rows_deleted.items()))
        click.echo(f"\nDeleted {count_of(len(report.deleted), 'stale ')}{kept}; rows: {rows or 'none'}.")
        if report.held:
            click.echo(
                f"{count(len(report.held), 'held annotation')} "
                f"{'was' if len(report.held) == 1 else 'were'} not deleted; they are recorded as held: "
                "check them, then `annotation-reconciler approve --dataset-id N` (or run again with --approve-held)."
            )


def _confirm_deletion(report: CleanupResult, yes: bool, approve_held: bool) -> bool:
    """Ask before deleting; returns whether the held annotations are approved too."""
    click.echo(
        "Warning: back up the database before deleting (e.g. pg_dump); deleted rows are also kept as JSON "
        "snapshots in annotation_reconciler_audit.deleted_annotation (`annotation-reconciler restore` puts them back).",
        err=True,
    )
    held = report.stale_held
    ordinary = len(report.stale) - len(held)
    for line in what_would_go(report):
        click.echo(line, err=True)
    if ordinary and not yes and not _confirm(f"Delete {count_of(ordinary, 'stale ')} and all their children?"):
        raise click.Abort()
    if not held:
        return False
    click.echo(
        f"Warning: {count(len(held), 'annotation')} {'is' if len(held) == 1 else 'are'} held as suspicious "
        f"({held[0].reason}); a wrong --s3-bucket or "
        "--s3-prefix looks exactly like this: check --s3-bucket and --s3-prefix.",
        err=True,
    )
    if approve_held:
        return True
    if yes:
        if not ordinary:
            raise CleanupError(
                f"nothing deleted: {'the' if len(held) == 1 else 'all'} {count_of(len(held), 'stale ')} "
                f"{'is' if len(held) == 1 else 'are'} held; answer the prompt (without --yes) "
                "or pass --approve-held"
            )
        return False
    if _confirm(f"Delete the {count_of(len(held), 'held ')} too?"):
        return True
    if not ordinary:
        raise CleanupError("nothing deleted: the held annotations were not approved")
    return False


if __name__ == "__main__":
    cleanup_stale_annotations()
