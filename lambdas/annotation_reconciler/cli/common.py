"""Helpers shared by the command-line entry points: database URL resolution and clear failures."""

from __future__ import annotations

import os

import click
from sqlalchemy import Engine, text

from annotation_reconciler.db import DatabaseUrlError, make_engine


class UsageError(click.ClickException):
    """Bad usage or configuration: one clear ``Error: ...`` line and exit code 2."""

    exit_code = 2


def engine_from(db_url: str | None, *, option: str = "--db-url") -> Engine:
    """An engine for ``db_url`` or ``RECONCILER_DB_URL``, checked by connecting once.

    Every problem (no URL, another driver, an unreachable server) becomes one line and exit 2.
    """
    raw = db_url or os.environ.get("RECONCILER_DB_URL")
    if not raw:
        raise UsageError(f"no database given: pass {option} or set RECONCILER_DB_URL=postgresql+pg8000://USER@HOST/DB")
    try:
        engine = make_engine(raw)
    except DatabaseUrlError as exc:
        raise UsageError(str(exc)) from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        url = engine.url.render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        raise UsageError(
            f"cannot connect to the database at {url} ({reason}): check RECONCILER_DB_URL and that the server is up"
        ) from None
    return engine
