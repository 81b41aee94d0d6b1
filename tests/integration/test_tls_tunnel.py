"""Verified TLS through a tunnel: the operator's port forward makes the host ``localhost``, the certificate names
the database's real name, and ``RECONCILER_DB_TLS_SERVER_NAME`` (``--db-tls-server-name``) verifies against it.

The database here is reached on 127.0.0.2 only, with a certificate for an RDS-like name (neither localhost nor an
address); a :class:`PortForward` on 127.0.0.1 plays `aws ssm start-session` (port forwarding to a remote host).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import CA_BUNDLE_ENV, TLS_SERVER_NAME_ENV, make_engine, normalize_url
from annotation_reconciler.errors import DatabaseUrlError
from annotation_reconciler.local.databases import create_portal_schema
from annotation_reconciler.local.postgres import LocalPostgres
from support.tls import issue_server_certificate, make_authority
from support.tunnel import PortForward

REAL_NAME = "portal-db.cluster-c0ffee.us-west-2.rds.amazonaws.com"


@dataclass(frozen=True)
class Tunnel:
    forward: PortForward
    ca: Path
    other_ca: Path
    psql: Path

    def url(self, query: str = "") -> str:
        return f"postgresql+pg8000://postgres@localhost:{self.forward.port}/postgres{query}"


@pytest.fixture(scope="module")
def tunnel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tunnel]:
    directory = tmp_path_factory.mktemp("tunnel")
    authority = make_authority("a private database CA")
    cert, key = issue_server_certificate(authority, directory, dns=(REAL_NAME,))
    # LocalPostgres checks itself on 127.0.0.1; the tests reach it only through the forward, to 127.0.0.2
    with LocalPostgres(tls=(cert, key), listen=("127.0.0.1", "127.0.0.2")) as server:
        local = make_engine(server.url)
        create_portal_schema(local)  # a portal database: `migrate` runs on nothing else
        local.dispose()
        forward = PortForward(("127.0.0.2", server.port))
        with forward as f:
            other = make_authority("other").write(directory / "other.pem")
            yield Tunnel(f, authority.write(directory / "ca.pem"), other, server.bindir / "psql")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CA_BUNDLE_ENV, raising=False)
    monkeypatch.delenv(TLS_SERVER_NAME_ENV, raising=False)


def ssl_in_use(url: str, **options: str) -> bool:
    engine = make_engine(url, **options)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar_one())
    finally:
        engine.dispose()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_localhost_plus_the_server_name_verifies_through_the_forward(tunnel: Tunnel) -> None:
    before = tunnel.forward.connections
    assert ssl_in_use(tunnel.url(), ca_bundle=str(tunnel.ca), server_name=REAL_NAME)
    assert tunnel.forward.connections > before  # it went through the tunnel


def test_from_nothing_to_status_through_the_tunnel(tunnel: Tunnel, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runbook's path: the bundle and the name in the environment, or the name as an option."""
    monkeypatch.setenv(CA_BUNDLE_ENV, str(tunnel.ca))
    code, output = run("migrate", "--db-url", tunnel.url(), "--db-tls-server-name", REAL_NAME)
    assert code == 0, output
    monkeypatch.setenv(TLS_SERVER_NAME_ENV, REAL_NAME)
    code, output = run("status", "--db-url", tunnel.url())
    assert code == 0 and "quarantine" in output.lower(), output


def test_a_wrong_server_name_is_refused(tunnel: Tunnel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CA_BUNDLE_ENV, str(tunnel.ca))
    code, output = run("status", "--db-url", tunnel.url(), "--db-tls-server-name", "portal-db.example.org")
    assert code == 2 and "failed TLS verification" in output and "mismatch" in output, output


def test_localhost_without_the_server_name_is_refused_not_sent_in_plain_text(
    tunnel: Tunnel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the bundle, localhost is checked against the certificate (which names the real host): refused, and the
    message says which variable names the server."""
    monkeypatch.setenv(CA_BUNDLE_ENV, str(tunnel.ca))
    code, output = run("status", "--db-url", tunnel.url())
    assert code == 2 and "mismatch" in output and TLS_SERVER_NAME_ENV in output, output


def test_the_server_name_alone_requires_tls_even_on_localhost(tunnel: Tunnel) -> None:
    """A server name without a bundle: still verified TLS (the system's CAs, which do not know this CA)."""
    code, output = run("status", "--db-url", tunnel.url(), "--db-tls-server-name", REAL_NAME)
    assert code == 2 and "failed TLS verification" in output, output


def test_a_wrong_ca_is_refused_through_the_tunnel(tunnel: Tunnel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CA_BUNDLE_ENV, str(tunnel.other_ca))
    code, output = run("status", "--db-url", tunnel.url(), "--db-tls-server-name", REAL_NAME)
    assert code == 2 and "certificate verify failed" in output, output


def test_libpq_verify_full_in_the_url_is_understood(tunnel: Tunnel) -> None:
    url = tunnel.url(f"?sslmode=verify-full&sslrootcert={tunnel.ca}")
    assert ssl_in_use(url, server_name=REAL_NAME)
    code, output = run("status", "--db-url", url, "--db-tls-server-name", "portal-db.example.org")
    assert code == 2 and "mismatch" in output, output


def test_verify_full_on_localhost_without_a_tunnel_is_tls_not_plain_text(tmp_path: Path) -> None:
    """sslmode=verify-full asks for verified TLS whatever the host: a plain local server is refused."""
    bundle = make_authority("x").write(tmp_path / "ca.pem")
    with LocalPostgres() as plain:
        code, output = run("status", "--db-url", f"{plain.url}?sslmode=verify-full&sslrootcert={bundle}")
    assert code == 2 and "does not offer TLS" in output, output


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-ca"])
def test_weaker_sslmodes_are_refused_naming_what_to_use(mode: str) -> None:
    with pytest.raises(DatabaseUrlError) as info:
        make_engine(normalize_url(f"postgresql://u@db.example.org/portal?sslmode={mode}"))
    message = str(info.value)
    assert f"sslmode={mode}" in message and "verify-full" in message and CA_BUNDLE_ENV in message


@pytest.mark.parametrize("parameter", ["sslcert=/tmp/c.pem", "hostaddr=127.0.0.1", "sslsni=0", "sslcrl=/tmp/x"])
def test_other_libpq_tls_parameters_are_refused_naming_the_variable(parameter: str) -> None:
    with pytest.raises(DatabaseUrlError) as info:
        make_engine(normalize_url(f"postgresql://u@localhost/portal?{parameter}"))
    assert parameter.split("=")[0] in str(info.value) and TLS_SERVER_NAME_ENV in str(info.value)


def test_a_url_bundle_that_contradicts_the_variable_is_refused(tunnel: Tunnel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CA_BUNDLE_ENV, str(tunnel.other_ca))
    with pytest.raises(DatabaseUrlError, match=f"sslrootcert.*{CA_BUNDLE_ENV}"):
        make_engine(tunnel.url(f"?sslrootcert={tunnel.ca}"))


@pytest.mark.parametrize("name", ["https://db.example.org", "db.example.org:5432", "a b", "-db.example.org"])
def test_a_server_name_that_is_no_host_name_is_refused(name: str) -> None:
    code, output = run("status", "--db-url", "postgresql://u@localhost:1/portal", "--db-tls-server-name", name)
    assert code == 2 and "is not a host name" in output and "--db-tls-server-name" in output, output


def runbook_psql(tunnel: Tunnel, sql: str, *, name: str = REAL_NAME, stop: bool = True, **variables: str) -> Any:
    """README's owner_psql: connect to 127.0.0.1 (hostaddr), verify the certificate against ``name`` (host)."""
    conninfo = (
        f"host={name} hostaddr=127.0.0.1 port={tunnel.forward.port} dbname=postgres user=postgres "
        f"sslmode=verify-full sslrootcert={tunnel.ca}"
    )
    args = [str(tunnel.psql), conninfo, "-X", "-q", *(["-v", "ON_ERROR_STOP=1"] if stop else [])]
    args += [a for k, v in variables.items() for a in ("-v", f"{k}={v}")]
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run(args, input=sql, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_the_runbooks_psql_creates_the_role_through_the_tunnel_with_verify_full(tunnel: Tunnel) -> None:
    done = runbook_psql(tunnel, "CREATE ROLE runbook_reconciler LOGIN PASSWORD :'pw';\n", pw="s3cret'; DROP")
    assert done.returncode == 0, done.stderr
    check = runbook_psql(tunnel, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'runbook_reconciler';\n")
    assert check.returncode == 0 and check.stdout.split() == ["rolcanlogin", "-------------", "t", "(1", "row)"]
    wrong = runbook_psql(tunnel, "SELECT 1;\n", name="portal-db.example.org")
    assert wrong.returncode != 0 and "does not match host name" in wrong.stderr, wrong.stderr


def test_without_on_error_stop_a_failed_grant_exits_zero_and_with_it_does_not(tunnel: Tunnel) -> None:
    """Why the runbook says psql -v ON_ERROR_STOP=1: a GRANT to a role that does not exist is no failure to psql."""
    grant = "GRANT SELECT ON pg_class TO no_such_role;\n"
    assert runbook_psql(tunnel, grant, stop=False).returncode == 0
    stopped = runbook_psql(tunnel, grant)
    assert stopped.returncode == 3 and 'role "no_such_role" does not exist' in stopped.stderr
