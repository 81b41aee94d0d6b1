"""A portal database set up as RDS runs it: the portal owner is a login role with CREATEROLE that owns the database
and the portal's tables, and is NOT a superuser; it creates the reconciler's login roles, applies the SQL of
``annotation-reconciler grants`` with ``psql -v ON_ERROR_STOP=1`` and runs ``annotation-reconciler migrate``.

The suite's server runs as a superuser (``postgres``); only :class:`RdsPortal`'s set-up and tear-down use it, to
create the owner and its database, as the RDS service does. Everything else runs as the owner or the roles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import make_engine
from annotation_reconciler.local.databases import DatabaseFactory, create_portal_schema
from annotation_reconciler.local.postgres import find_bindir

#: The orders the runbook allows: grants before the first migrate, or after it.
ORDERS = ("grants-then-migrate", "migrate-then-grants")
#: The servers the boundary is tested on: the machine's PostgreSQL (15) and the newest the dev extras ship (18).
SERVERS = ("system", "newest")


def psql_binary(bindir: Path | None = None) -> str:
    """The psql of the server's binaries (default the suite's server), else the PATH's."""
    for candidate in ((bindir or find_bindir()) / "psql", shutil.which("psql")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RuntimeError("psql not found: install postgresql-client (the suite's server binaries come with it)")


@dataclass
class RdsPortal:
    """One throwaway database as RDS would hold it; roles are per test (role names are cluster-wide)."""

    factory: DatabaseFactory
    suffix: str
    bindir: Path | None = None  # the server's binaries (its psql is used); None: the suite's server
    name: str = ""
    owner: str = ""
    role: str = ""
    events: str = ""
    engines: list[Engine] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = f"rds_{self.suffix}"
        self.owner, self.role, self.events = f"owner_{self.suffix}", f"rec_{self.suffix}", f"rec_ev_{self.suffix}"

    # --- the RDS service's part (superuser) -------------------------------------------------------
    def create(self) -> None:
        self.drop()
        with make_engine(self.factory.url_for("postgres")).connect() as admin:
            admin = admin.execution_options(isolation_level="AUTOCOMMIT")
            admin.execute(text(f"CREATE ROLE {self.owner} LOGIN CREATEROLE NOSUPERUSER"))
            admin.execute(text(f'CREATE DATABASE "{self.name}" OWNER {self.owner}'))
        create_portal_schema(self.engine(self.owner))
        with self.engine(self.owner).begin() as conn:  # the master user creates the login roles (runbook step 1c)
            conn.execute(text(f"CREATE ROLE {self.role} LOGIN"))
            conn.execute(text(f"CREATE ROLE {self.events} LOGIN"))

    def drop(self) -> None:
        for engine in self.engines:
            engine.dispose()
        self.engines.clear()
        self.factory.drop(self.name)
        with make_engine(self.factory.url_for("postgres")).connect() as admin:
            admin = admin.execution_options(isolation_level="AUTOCOMMIT")
            for role in (self.events, self.role, self.owner):
                admin.execute(text(f"DROP ROLE IF EXISTS {role}"))

    # --- connections ------------------------------------------------------------------------------
    def url(self, user: str) -> str:
        return make_url(self.factory.url_for(self.name)).set(username=user, password=None).render_as_string()

    def engine(self, user: str) -> Engine:
        engine = make_engine(self.url(user))
        self.engines.append(engine)
        return engine

    # --- the owner's runbook steps ------------------------------------------------------------------
    def psql(self, sql: str, *, user: str | None = None) -> subprocess.CompletedProcess[str]:
        """``psql -v ON_ERROR_STOP=1 -f FILE`` as ``user`` (default the owner)."""
        url = make_url(self.url(user or self.owner))
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(sql)
        try:
            return subprocess.run(
                [psql_binary(self.bindir), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(url.host),
                 "-p", str(url.port), "-U", str(url.username), "-d", str(url.database), "-f", f.name],
                capture_output=True, text=True, timeout=60, env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
            )  # fmt: skip
        finally:
            os.unlink(f.name)

    def grants(self, *, events: bool = True) -> None:
        args = ["grants", "--role", self.role, *(["--events-role", self.events] if events else [])]
        printed = CliRunner().invoke(cli, args)
        assert printed.exit_code == 0, printed.output
        applied = self.psql(printed.output)
        assert applied.returncode == 0, applied.stderr

    def migrate(self, user: str | None = None) -> str:
        result = CliRunner().invoke(cli, ["migrate", "--db-url", self.url(user or self.owner)])
        assert result.exit_code == 0, result.output
        return result.output

    def set_up(self, order: str) -> None:
        """The runbook's database steps in ``order`` (one of :data:`ORDERS`)."""
        if order == "grants-then-migrate":
            self.grants()
            self.migrate()
        else:
            self.migrate()
            self.grants()
