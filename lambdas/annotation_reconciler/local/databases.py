"""Throwaway databases on a PostgreSQL server: the portal stand-in schema plus our migrations.

A template database is prepared once; each caller then gets a fresh copy in tens of
milliseconds with ``CREATE DATABASE … TEMPLATE``::

    factory = DatabaseFactory(server_url)
    url = factory.fresh("test_1")      # portal schema + reconciler migrations, empty
"""

from __future__ import annotations

import re
from importlib import resources

import pg8000.native
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from annotation_reconciler.db import make_engine
from annotation_reconciler.ledger import migrate

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def portal_schema_sql() -> str:
    return resources.files("annotation_reconciler.local").joinpath("portal_schema.sql").read_text()


def create_portal_schema(engine: Engine) -> None:
    """Create the portal stand-in tables with plain DDL (not from our models), in ``public`` as the portal's own
    migrations do (the package's sessions put ``pg_catalog`` first, where nothing may be created)."""
    with engine.begin() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("SET LOCAL search_path TO public")
        cursor.execute(portal_schema_sql())


class DatabaseFactory:
    """Makes fresh databases from a template on the server behind ``server_url``."""

    def __init__(self, server_url: str, template: str = "reconciler_template") -> None:
        self.server_url = make_url(server_url)
        self.template = template
        self._ready = False

    def _admin(self, *statements: str) -> None:
        # CREATE/DROP DATABASE must run outside a transaction: a plain autocommit pg8000
        # connection is the simplest way to be sure of that.
        url = self.server_url
        conn = pg8000.native.Connection(
            url.username or "postgres",
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            password=url.password,
            database="postgres",
        )
        try:
            for statement in statements:
                conn.run(statement)
        finally:
            conn.close()

    def url_for(self, name: str) -> str:
        return self.server_url.set(database=name).render_as_string(hide_password=False)

    def _recreate(self, name: str, template: str | None = None) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"not a database name: {name!r}")
        suffix = f' TEMPLATE "{template}"' if template else ""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"{suffix}')

    def prepare_template(self) -> None:
        if self._ready:
            return
        self._recreate(self.template)
        engine = make_engine(self.url_for(self.template))
        try:
            create_portal_schema(engine)
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        self._ready = True

    def fresh(self, name: str) -> str:
        """A new empty database holding the portal schema and our migrations; returns its URL."""
        self.prepare_template()
        self._recreate(name, self.template)
        return self.url_for(name)

    def empty(self, name: str) -> str:
        """A new database with nothing in it; returns its URL."""
        self._recreate(name)
        return self.url_for(name)

    def drop(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
