"""Helpers shared by the command-line entry points: the database options, engine resolution and clear failures."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from annotation_reconciler.db import (
    TLS_SERVER_NAME_ENV,
    DatabaseSecret,
    check_server_name,
    connection_failure,
    make_engine,
    normalize_url,
    secret_engine,
)
from annotation_reconciler.errors import DatabaseUrlError, SettingsError
from annotation_reconciler.names import Env
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.plural import count
from annotation_reconciler.settings import Settings, parse_bool, unknown_variables, validate_bucket

F = TypeVar("F", bound=Callable[..., Any])


def operator_name() -> str:
    """Who runs the command, for the audit: $USER, else "operator"."""
    return os.environ.get("USER") or "operator"


class UsageError(click.ClickException):
    """Bad usage or configuration: one clear ``Error: ...`` line and exit code 2."""

    exit_code = 2


def check_environment(env: Mapping[str, str] | None = None) -> None:
    """Refuse (exit 2) any ``RECONCILER_*`` variable the tool does not read, naming the closest known one."""
    problems = unknown_variables(os.environ if env is None else env)
    if problems:
        raise UsageError("; ".join(problems))


def driver_error_line(exc: DBAPIError) -> str:
    """A database error as one line: the server's message and SQLSTATE (pg8000 gives them as a dict)."""
    orig = exc.orig
    detail = orig.args[0] if orig is not None and orig.args else None
    if isinstance(detail, dict):
        message, code = str(detail.get("M", "")), str(detail.get("C", ""))
    else:
        message, code = str(detail or orig or exc).splitlines()[0], ""
    hint = ""
    if code == "42501":
        hint = ": the role lacks a right; apply `annotation-reconciler grants --role ROLE` as the portal's owner"
    elif code in ("42P01", "3F000", "42883"):
        hint = ": the reconciler's tables are missing or old; the portal's owner runs `annotation-reconciler migrate`"
    return (
        f"the database refused the command, nothing more was done: {message[:300]}"
        + (f" (SQLSTATE {code})" if code else "")
        + hint
    )


def _translated(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    try:
        return invoke(ctx)
    except DBAPIError as exc:
        raise UsageError(driver_error_line(exc)) from None


class Group(click.Group):
    """The ``annotation-reconciler`` group: a database error in any command is one line and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        return _translated(super().invoke, ctx)


class Command(click.Command):
    """A stand-alone command (``cleanup-stale-annotations``) with the group's error translation."""

    def invoke(self, ctx: click.Context) -> Any:
        return _translated(super().invoke, ctx)


#: present in every database the reconciler's migrations reached (the ledger, then issue 24's audit)
_LEDGER_CHECK = (
    "SELECT pg_catalog.to_regclass('annotation_reconciler.annotation_quarantine') IS NOT NULL "
    "AND pg_catalog.to_regclass('annotation_reconciler_audit.deleted_annotation') IS NOT NULL"
)


def require_ledger(engine: Engine) -> None:
    """Refuse (exit 2) a database the reconciler's migrations never reached, naming the command that fixes it."""
    with engine.connect() as conn:
        ready = conn.execute(text(_LEDGER_CHECK)).scalar_one()
    if not ready:
        raise UsageError(
            f"the database at {engine.url.render_as_string(hide_password=True)} has no reconciler tables "
            "(annotation_reconciler.annotation_quarantine, annotation_reconciler_audit.deleted_annotation): "
            "the portal's owner runs `annotation-reconciler migrate` on it first (is this the portal's database?)"
        )


_SERVER_NAME_KEY = "db_tls_server_name"


def _remember_server_name(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """Keep ``--db-tls-server-name`` for :func:`engine_from` (checked here, so a bad name is a usage error)."""
    if value is None or not value.strip():
        return
    try:
        ctx.meta[_SERVER_NAME_KEY] = check_server_name(value.strip(), f"--db-tls-server-name ({TLS_SERVER_NAME_ENV})")
    except DatabaseUrlError as exc:
        raise UsageError(str(exc)) from None


def db_options(fn: F) -> F:
    """``--db-url``, ``--db-secret-arn`` and ``--db-tls-server-name`` (each with its environment variable), as every
    command takes them. The server name reaches :func:`engine_from` through the click context, not an argument."""
    fn = click.option(
        "--db-tls-server-name",
        envvar=TLS_SERVER_NAME_ENV,
        expose_value=False,
        callback=_remember_server_name,
        help="The database's real host name, which its certificate names, when the URL's host is not it: "
        f"localhost through an SSM or SSH port forward (default: ${Env.DB_TLS_SERVER_NAME}).",
    )(fn)
    fn = click.option(
        "--db-secret-arn",
        envvar=Env.DB_SECRET_ARN,
        help="Secrets Manager secret (RDS JSON) holding the credentials, as the Lambdas use "
        f"(default: ${Env.DB_SECRET_ARN}).",
    )(fn)
    return click.option(
        "--db-url",
        "--db-uri",
        "db_url",
        envvar=Env.DB_URL,
        help=f"Database URL, password percent-encoded (default: ${Env.DB_URL}; --db-uri is the same).",
    )(fn)


def engine_from(
    db_url: str | None, db_secret_arn: str | None = None, *, option: str = "--db-url", ledger: bool = True
) -> Engine:
    """An engine for ``db_url`` (or ``RECONCILER_DB_URL``), else for the secret ``db_secret_arn`` (or
    ``RECONCILER_DB_SECRET_ARN``), checked by connecting once.

    Every problem (nothing given, an unescaped password, another driver, an unreadable secret, an
    unreachable server, a failed TLS verification, a database never migrated when ``ledger``) becomes one
    line and exit 2; no password is shown.
    """
    raw = db_url or os.environ.get(Env.DB_URL)
    arn = db_secret_arn or os.environ.get(Env.DB_SECRET_ARN)
    if not raw and not arn:
        raise UsageError(
            f"no database given: pass {option} or --db-secret-arn, or set {Env.DB_URL}="
            f"postgresql+pg8000://USER@HOST/DB or {Env.DB_SECRET_ARN}"
        )
    context = click.get_current_context(silent=True)
    server_name = context.meta.get(_SERVER_NAME_KEY) if context is not None else None
    try:
        engine = (
            make_engine(normalize_url(raw), server_name=server_name)
            if raw
            else secret_engine(DatabaseSecret(str(arn)), server_name=server_name)
        )
    except DatabaseUrlError as exc:
        raise UsageError(str(exc)) from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        source = Env.DB_URL if raw else "the secret"
        raise UsageError(connection_failure(exc, engine.url) + f" ({source})") from None
    if ledger:
        try:
            require_ledger(engine)
        except BaseException:
            engine.dispose()
            raise
    return engine


def settings_from(options: Mapping[str, tuple[str, object]], *, require_db: bool = False) -> Settings:
    """The settings of a command, built the one way every entry point builds them: ``Settings.from_env``
    over the environment, with each option the user gave in place of its variable.

    ``options`` maps a ``RECONCILER_*`` variable to (the option's name, its value); a value of ``None``
    leaves the variable as the environment has it. Every problem is refused at once, naming the option::

        settings_from({"RECONCILER_BUCKET": ("--bucket", bucket), "RECONCILER_DRY_RUN": ("--dry-run", True)})
    """
    env = dict(os.environ)
    given: dict[str, str] = {}
    for variable, (option, value) in options.items():
        if value is None:
            continue
        env[variable] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        given[variable] = option
    try:
        return Settings.from_env(env, require_db=require_db)
    except SettingsError as exc:
        problems = []
        for problem in exc.problems:
            for variable, option in given.items():
                problem = problem.replace(f"{variable}=", f"{option} ({variable})=", 1)
            problems.append(problem)
        raise UsageError("; ".join(problems)) from None


def layout_from(bucket_option: str, bucket: str, s3_prefix: str) -> BucketLayout:
    """The bucket layout a command's options name; a bad bucket name or prefix is one usage error that names
    ``bucket_option``."""
    try:
        validate_bucket(bucket_option, bucket)
        return BucketLayout.from_prefix(bucket, s3_prefix)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def nothing_found_line(bucket: str, s3_prefix: str, annotations: int, first_reason: str, options: str) -> str:
    """The one-line diagnosis of a scope in which no annotation's metadata was found (every row absent, unknown
    or held): a wrong bucket or prefix is far likelier than a whole scope deleted."""
    prefix = s3_prefix or f"s3://{bucket}/"
    return (
        f"none of the {count(annotations, 'annotation')} in scope has its metadata in bucket {bucket} under prefix "
        f"{prefix} "
        f"(first reason: {first_reason}): check {options}"
    )


@dataclass(frozen=True)
class DryRun:
    """Whether a command runs dry, and what decided it: its flag, ``RECONCILER_DRY_RUN`` (as the Lambdas read it),
    or the command's own default when the variable is not set."""

    on: bool
    decided_by: str

    def __str__(self) -> str:
        what = "dry run: nothing is deleted or written" if self.on else "not a dry run: changes are written"
        return f"{what} (decided by {self.decided_by})"


def dry_run_from(flag: bool | None, *, default: bool, env: Mapping[str, str] | None = None) -> DryRun:
    """Every command's dry run, decided one way: ``--dry-run``/``--no-dry-run`` when given, else
    ``RECONCILER_DRY_RUN`` when set (a value that is not a boolean is a usage error), else ``default``.

    >>> str(dry_run_from(None, default=False, env={"RECONCILER_DRY_RUN": "true"}))
    'dry run: nothing is deleted or written (decided by RECONCILER_DRY_RUN=true)'
    >>> dry_run_from(False, default=True, env={"RECONCILER_DRY_RUN": "true"}).decided_by
    '--no-dry-run'
    """
    if flag is not None:
        return DryRun(flag, "--dry-run" if flag else "--no-dry-run")
    raw = (os.environ if env is None else env).get(Env.DRY_RUN, "").strip()
    if not raw:
        return DryRun(default, f"the default ({Env.DRY_RUN} is not set)")
    try:
        return DryRun(parse_bool(Env.DRY_RUN, raw), f"{Env.DRY_RUN}={raw}")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
