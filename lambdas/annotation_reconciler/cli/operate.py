"""The operators' commands on the ledger: status, approve, release (scan and purge: :mod:`.reconcile`)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

from annotation_reconciler.cli import documents, status_view, via_lambda
from annotation_reconciler.cli.common import (
    UsageError,
    db_options,
    engine_from,
    operator_name,
)
from annotation_reconciler.errors import LedgerSchemaError
from annotation_reconciler.ledger import history
from annotation_reconciler.ledger import status as ledger_status
from annotation_reconciler.ledger.exemptions import Released
from annotation_reconciler.rules.plural import count
from annotation_reconciler.service import operators

console = Console()


@click.command()
@db_options
@click.option("--dataset-id", type=int, help="Report this dataset only (default: the whole ledger).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=status_view.ROWS_SHOWN,
    show_default=True,
    help="Waiting rows shown per dataset in text (json has them all).",
)
@click.pass_context
def status(
    ctx: click.Context, db_url: str | None, db_secret_arn: str | None, dataset_id: int | None, output: str, limit: int
) -> None:
    """What waits and why: counts by status; the quarantined, unknown, held and exempt annotations, each with its
    id, key, since and reason; each held, failed, unknown or overdue row with its next command (by dataset); blind
    prefixes, missing files, resurrections. All of the ledger, or one dataset (--dataset-id)."""
    function = via_lambda.function_of(ctx)
    if function:
        asked: dict[str, Any] = {"action": "status"}
        if dataset_id is not None:
            asked["dataset_id"] = dataset_id
        report = via_lambda.invoke(function, asked)
    else:
        engine = engine_from(db_url, db_secret_arn)
        try:
            if dataset_id is not None:
                with engine.connect() as conn:
                    if not history.dataset_known(conn, dataset_id):
                        raise UsageError(
                            f"no dataset {dataset_id} in the portal or the reconciler's ledger: check the id "
                            "(`annotation-reconciler status` reports every dataset)"
                        )
            report = ledger_status.as_json(operators.status(engine, dataset_id=dataset_id))
        except LedgerSchemaError as exc:
            raise UsageError(str(exc)) from None
        finally:
            engine.dispose()
    if output == "json":
        click.echo(json.dumps(report, indent=2))
        return
    status_view.render(report, console, rows=limit)


@click.command()
@db_options
@click.option("--dataset-id", type=int, required=True, help="The dataset whose held deletions may proceed.")
@click.option("--by", default=operator_name, help="Who approves (for the audit; default $USER).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def approve(
    ctx: click.Context, db_url: str | None, db_secret_arn: str | None, dataset_id: int, by: str, output: str
) -> None:
    """Let the mass-deletion guard's held rows of a dataset be purged (S3 is still checked first)."""
    function = via_lambda.function_of(ctx)
    if function:
        approved = int(
            via_lambda.invoke(function, {"action": "approve", "dataset_id": dataset_id, "by": by})["approved"]
        )
    else:
        engine = engine_from(db_url, db_secret_arn)
        try:
            approved = operators.approve(engine, dataset_id, by=by)
            with engine.connect() as conn:
                known = bool(approved) or history.dataset_known(conn, dataset_id)
        finally:
            engine.dispose()
        if not known:
            raise UsageError(
                f"no dataset {dataset_id} in the portal or the reconciler's ledger: check the id "
                "(`annotation-reconciler status` lists the held datasets)"
            )
    if output == "json":
        click.echo(documents.dumps({"dataset_id": dataset_id, "approved": approved, "by": by}))
        return
    if not approved:
        click.echo(
            f"dataset {dataset_id} has no held annotations: nothing to approve "
            "(`annotation-reconciler status` lists the held datasets)"
        )
        return
    click.echo(
        f"approved {count(approved, 'held annotation')} of dataset {dataset_id}; the next purge re-checks S3 and "
        "deletes"
    )


@click.command()
@db_options
@click.option("--annotation-id", type=int, required=True)
@click.option("--by", default=operator_name, help="Who releases (for the audit; default $USER).")
@click.option("--clear", is_flag=True, help="End an earlier release: scans and events judge the annotation again.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def release(
    ctx: click.Context,
    db_url: str | None,
    db_secret_arn: str | None,
    annotation_id: int,
    by: str,
    clear: bool,
    output: str,
) -> None:
    """Release one annotation from quarantine: it is not purged, and no scan or event quarantines it again
    until its metadata is seen in S3 again or its stored path changes (or `release --clear`)."""
    function = via_lambda.function_of(ctx)
    if function and clear:
        raise click.UsageError("release --clear needs the database; the schedule function does not take it")
    if function:
        answer = via_lambda.invoke(function, {"action": "release", "annotation_id": annotation_id, "by": by})
        if not answer["released"]:
            raise click.ClickException(f"annotation {annotation_id} has no open quarantine row (nothing changed)")
        if output == "json":
            click.echo(documents.dumps({"annotation_id": annotation_id, "by": by, **answer}))
            return
        if answer.get("outcome") == Released.ALREADY.value:
            click.echo(f"annotation {annotation_id} is already released: the release is kept, nothing changed")
        else:
            click.echo(f"released annotation {annotation_id} (by {by}) through {function}")
        return
    engine = engine_from(db_url, db_secret_arn)
    try:
        with engine.connect() as conn:
            if not history.annotation_known(conn, annotation_id):
                raise UsageError(
                    f"no annotation {annotation_id} in the portal or the reconciler's ledger: check the id"
                )
    except BaseException:
        engine.dispose()
        raise
    if clear:
        cleared = operators.clear_release(engine, annotation_id, by=by)
        engine.dispose()
        if not cleared:
            raise click.ClickException(f"annotation {annotation_id} has no release to clear")
        if output == "json":
            click.echo(documents.dumps({"annotation_id": annotation_id, "outcome": "cleared", "by": by}))
            return
        click.echo(f"cleared the release of annotation {annotation_id}: the next scan or event judges it again")
        return
    done = operators.release(engine, annotation_id, by=by)
    kept = operators.exemption(engine, annotation_id) if done is Released.ALREADY else None
    engine.dispose()
    if not done:
        raise click.ClickException(f"annotation {annotation_id} has no open quarantine row (nothing changed)")
    if output == "json":
        document: dict[str, Any] = {"annotation_id": annotation_id, "outcome": "released", "by": by}
        if kept is not None:
            document = {
                "annotation_id": annotation_id,
                "outcome": "already released",
                "by": kept.released_by,
                "at": kept.released_at,
                "s3_metadata_path": kept.s3_metadata_path,
            }
        click.echo(documents.dumps(document))
        return
    if kept is not None:
        click.echo(
            f"annotation {annotation_id} is already released by {kept.released_by} (at {kept.released_at}), exempt "
            f"while its stored path is {kept.s3_metadata_path}: the release is kept, nothing changed"
        )
        return
    click.echo(
        f"released annotation {annotation_id} (by {by}); exempt until its metadata or stored path changes, "
        f"or `annotation-reconciler release --clear --annotation-id {annotation_id}`"
    )
