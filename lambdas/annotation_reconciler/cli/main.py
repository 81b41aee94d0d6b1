"""``annotation-reconciler``: grants, migrate, ingest, scan, purge, status, approve, release, restore, history,
local."""

from __future__ import annotations

import click

from annotation_reconciler.cli import operate, reconcile
from annotation_reconciler.cli.common import Group, UsageError, check_environment, db_options, engine_from
from annotation_reconciler.cli.history import history
from annotation_reconciler.cli.ingest import ingest
from annotation_reconciler.cli.local import local as local_command
from annotation_reconciler.cli.restore import restore
from annotation_reconciler.cli.via_lambda import COMMANDS
from annotation_reconciler.errors import LedgerSchemaError
from annotation_reconciler.ledger import migrate as ledger_migrate
from annotation_reconciler.ledger.grants import grants_sql


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="annotation-reconciler", prog_name="annotation-reconciler")
@click.option(
    "--via-lambda",
    metavar="FUNCTION",
    help="Send status, approve or release to the deployed schedule function (name or ARN) instead of "
    "connecting to the database: aws lambda invoke, with your IAM rights.",
)
@click.pass_context
def cli(ctx: click.Context, via_lambda: str | None) -> None:
    """Keep the portal's annotation rows true to its S3 bucket."""
    check_environment()
    if via_lambda and ctx.invoked_subcommand not in COMMANDS:
        raise UsageError(f"--via-lambda works with {', '.join(COMMANDS)}, not {ctx.invoked_subcommand}")
    ctx.obj = {"via_lambda": via_lambda}


@cli.command()
@db_options
def migrate(db_url: str | None, db_secret_arn: str | None) -> None:
    """Create or upgrade the reconciler's own tables in their two schemas (never public, never the portal's
    alembic_version). Run it as the owner of the portal's tables: the reconciler's roles may create nothing."""
    engine = engine_from(db_url, db_secret_arn, ledger=False)
    try:
        with engine.connect() as conn:
            ledger_migrate.require_migrator(conn)
        before = ledger_migrate.current_revision(engine)
        after = ledger_migrate.upgrade(engine)
        indexed = ledger_migrate.metadata_path_index_ready(engine)
    except LedgerSchemaError as exc:
        raise UsageError(str(exc)) from None
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"reconciler schema already at {after}")
    else:
        click.echo(f"reconciler schema upgraded from {before or 'nothing'} to {after}")
        click.echo(
            "if the reconciler's roles were granted before this upgrade by an older version, apply the SQL of "
            "`annotation-reconciler grants --role ROLE` again (idempotent)"
        )
    if not indexed:
        click.echo(
            f"warning: public.annotation(s3_metadata_path) has no valid index; as the table's owner run: "
            f"{ledger_migrate.INDEX_SQL}",
            err=True,
        )


@cli.command()
@click.option("--role", required=True, help="The reconciler's database role (Lambdas and operators).")
@click.option("--events-role", help="Optionally, a narrower role for the events Lambda (no DELETE).")
def grants(role: str, events_role: str | None) -> None:
    """Print the SQL the owner of the portal's tables runs to give ROLE exactly what the reconciler needs."""
    try:
        click.echo(grants_sql(role, events_role=events_role), nl=False)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


cli.add_command(reconcile.scan)
cli.add_command(reconcile.purge)
cli.add_command(operate.status)
cli.add_command(operate.approve)
cli.add_command(operate.release)
cli.add_command(restore)
cli.add_command(history)
cli.add_command(local_command)
cli.add_command(ingest)
