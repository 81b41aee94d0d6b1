"""``annotation-reconciler restore``: undo a purge from the ledger's snapshots (dry run by default)."""

from __future__ import annotations

import datetime
import json

import click
from sqlalchemy.exc import DBAPIError

from annotation_reconciler.cli.common import UsageError, db_options, dry_run_from, engine_from, operator_name
from annotation_reconciler.errors import LedgerSchemaError
from annotation_reconciler.names import Env
from annotation_reconciler.rules.plural import count
from annotation_reconciler.service.restore import RestoreError, RestoreScope
from annotation_reconciler.service.restore import restore as restore_purged


def parse_since(value: str | None) -> datetime.datetime | None:
    """An ISO 8601 time; one without a zone is UTC."""
    if value is None:
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--since {value!r} is not an ISO 8601 time: use e.g. 2026-01-31T12:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


@click.command()
@db_options
@click.option("--annotation-id", type=int, help="Restore this purged annotation.")
@click.option("--dataset-id", type=int, help="Restore the purged annotations of this dataset.")
@click.option("--since", help="With --dataset-id: only those purged at or after this ISO 8601 time.")
@click.option(
    "--dry-run/--no-dry-run",
    default=None,
    help=f"Only show; --no-dry-run writes (default: ${Env.DRY_RUN}; unset: dry run).",
)
@click.option("--by", default=operator_name, help="Who restores (for the audit; default $USER).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def restore(
    db_url: str | None,
    db_secret_arn: str | None,
    annotation_id: int | None,
    dataset_id: int | None,
    since: str | None,
    dry_run: bool | None,
    by: str,
    output: str,
) -> None:
    """Put purged annotations back, with every child row and their original ids, from the deletion audit
    (which the reconciler's roles cannot write), in one transaction. Refuses when a row with one of those ids,
    or an annotation with the same natural key, exists now, or when two snapshots in scope share a natural
    key. Run it as the portal's owner (it INSERTs into the portal's annotation tables)."""
    if (annotation_id is None) == (dataset_id is None):
        raise UsageError("give --annotation-id N, or --dataset-id N (optionally with --since TIME)")
    if since is not None and dataset_id is None:
        raise UsageError("--since goes with --dataset-id")
    dry = dry_run_from(dry_run, default=True)
    dry_run = dry.on
    scope = RestoreScope(annotation_id=annotation_id, dataset_id=dataset_id, since=parse_since(since))
    engine = engine_from(db_url, db_secret_arn)
    try:
        with engine.begin() as conn:
            result = restore_purged(conn, scope, by=by, now=datetime.datetime.now(datetime.UTC), dry_run=dry_run)
    except (RestoreError, LedgerSchemaError) as exc:
        raise click.ClickException(str(exc)) from None
    except DBAPIError as exc:
        raise click.ClickException(
            f"the database refused the restore, nothing was restored: {exc.orig}. The role needs the right to "
            "insert into the annotation tables and to update their id sequences; a parent row (run, voxel spacing) "
            "may be gone"
        ) from None
    finally:
        engine.dispose()
    if output == "json":
        document = {"dry_run": dry_run, "annotations": result.annotations, "rows": dict(result.rows), "by": by}
        click.echo(json.dumps(document, indent=2))
        click.echo(str(dry), err=True)
        return
    verb = "would restore" if dry_run else "restored"
    rows = ", ".join(f"{t} {n}" for t, n in result.rows.items())
    more = f" and {len(result.annotations) - 20} more" if len(result.annotations) > 20 else ""
    click.echo(f"{verb} {count(len(result.annotations), 'annotation')} (rows: {rows}): {result.annotations[:20]}{more}")
    click.echo(str(dry))
    if dry_run:
        click.echo("dry run: nothing written; run again with --no-dry-run to restore")
