"""``annotation-reconciler history``: every deletion and restore from the audit, newest first (Delta Lake's
``DESCRIBE HISTORY`` is the model), each with the command that undoes it."""

from __future__ import annotations

import json
from typing import Any

import click

from annotation_reconciler.cli.common import db_options, engine_from
from annotation_reconciler.cli.restore import parse_since
from annotation_reconciler.ledger import history as ledger_history
from annotation_reconciler.rules.plural import count

#: entries shown in text; JSON has them all
TEXT_LIMIT = 50


def entry(d: ledger_history.Deletion) -> dict[str, Any]:
    return {
        "annotation_id": d.annotation_id,
        "dataset_id": d.dataset_id,
        "run_id": d.run_id,
        "s3_metadata_path": d.s3_metadata_path,
        "metadata_key": d.metadata_key,
        "source": d.source,
        "reason": d.reason,
        "deleted_at": d.deleted_at.isoformat(),
        "deleted_by": d.deleted_by,
        "approved_by": d.approved_by,
        "restored_at": d.restored_at.isoformat() if d.restored_at else None,
        "restored_by": d.restored_by,
        "undo": d.restore_command,
    }


def text_lines(d: ledger_history.Deletion) -> list[str]:
    """One entry: a headline, then its key and what undoes it, each on its own unbroken line."""
    approved = f", approved by {d.approved_by}" if d.approved_by else ""
    lines = [
        f"{d.deleted_at:%Y-%m-%d %H:%M:%S%z} deleted annotation {d.annotation_id} (dataset {d.dataset_id}, run "
        f"{d.run_id}) by {d.source}{approved}, as {d.deleted_by}: {d.reason}",
        f"    key: {d.metadata_key or d.s3_metadata_path}",
    ]
    if d.restored_at is not None:
        lines.append(f"    restored {d.restored_at:%Y-%m-%d %H:%M:%S%z} by {d.restored_by}")
    else:
        lines.append(f"    undo: {d.restore_command}")
    return lines


@click.command("history")
@db_options
@click.option("--dataset-id", type=int, help="Only this dataset's deletions.")
@click.option("--since", help="Only deletions or restores at or after this ISO 8601 time (UTC unless zoned).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def history(
    db_url: str | None, db_secret_arn: str | None, dataset_id: int | None, since: str | None, output: str
) -> None:
    """Every annotation the reconciler deleted and every restore, newest first: when, which path decided (event,
    scan, importer, cli), who approved, the database login that deleted, and the `restore` command that undoes it."""
    when = parse_since(since)
    engine = engine_from(db_url, db_secret_arn)
    try:
        with engine.connect() as conn:
            found = ledger_history.deletions(conn, dataset_id=dataset_id, since=when)
    finally:
        engine.dispose()
    if output == "json":
        click.echo(json.dumps({"deletions": [entry(d) for d in found]}, indent=2))
        return
    if not found:
        click.echo("no deletions recorded" + (f" for dataset {dataset_id}" if dataset_id is not None else ""))
        return
    restored = sum(d.restored_at is not None for d in found)
    click.echo(f"{count(len(found), 'deletion')}, {restored} of them restored (newest first):")
    for d in found[:TEXT_LIMIT]:
        for line in text_lines(d):
            click.echo(line)
    if len(found) > TEXT_LIMIT:
        click.echo(f"and {len(found) - TEXT_LIMIT} more (all of them: --output json)")
