"""TLS to the database: verified (chain and host name) for every host but a local one, against a CA bundle.

A PostgreSQL started here with ssl=on and a certificate from a CA the suite makes, listening on 127.0.0.1 (local)
and 127.0.0.2 (which the reconciler treats as a remote host). The certificate names 127.0.0.2 and localhost, not
127.0.0.1, so a connection to 127.0.0.1 that verifies host names must fail.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from annotation_reconciler.cli.main import cli
from annotation_reconciler.db import CA_BUNDLE_ENV, RDS_CA_BUNDLE_URL, make_engine, tls_context
from annotation_reconciler.local.databases import create_portal_schema
from annotation_reconciler.local.postgres import LocalPostgres
from support.tls import issue_server_certificate, make_authority


class TlsServer:
    def __init__(self, server: LocalPostgres, right_ca: Path, wrong_ca: Path) -> None:
        self.server, self.right_ca, self.wrong_ca = server, right_ca, wrong_ca

    def url(self, host: str) -> str:
        return f"postgresql+pg8000://postgres@{host}:{self.server.port}/postgres"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    directory = tmp_path_factory.mktemp("tls")
    right, wrong = make_authority("reconciler test CA"), make_authority("some other CA")
    cert, key = issue_server_certificate(right, directory, dns=("localhost",), ips=("127.0.0.2",))
    with LocalPostgres(tls=(cert, key), listen=("127.0.0.1", "127.0.0.2")) as server:
        local = make_engine(f"postgresql+pg8000://postgres@127.0.0.1:{server.port}/postgres")
        create_portal_schema(local)  # `migrate` runs only on a portal database
        local.dispose()
        yield TlsServer(server, right.write(directory / "right.pem"), wrong.write(directory / "wrong.pem"))


def ssl_in_use(url: str, **options: str) -> bool:
    engine = make_engine(url, **options)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar_one())
    finally:
        engine.dispose()


def migrate(url: str, monkeypatch: pytest.MonkeyPatch, ca_bundle: Path | None) -> tuple[int, str]:
    if ca_bundle is None:
        monkeypatch.delenv(CA_BUNDLE_ENV, raising=False)
    else:
        monkeypatch.setenv(CA_BUNDLE_ENV, str(ca_bundle))
    result = CliRunner().invoke(cli, ["migrate", "--db-url", url])
    return result.exit_code, result.output


def test_the_right_ca_connects_with_host_verification(tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ssl_in_use(tls_server.url("127.0.0.2"), ca_bundle=str(tls_server.right_ca))
    code, output = migrate(tls_server.url("127.0.0.2"), monkeypatch, tls_server.right_ca)
    assert code == 0 and "reconciler schema" in output, output


def test_a_wrong_ca_is_refused_with_a_clear_error(tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = migrate(tls_server.url("127.0.0.2"), monkeypatch, tls_server.wrong_ca)
    assert code == 2
    assert "failed TLS verification" in output and "certificate verify failed" in output
    assert f"set {CA_BUNDLE_ENV} to the CA bundle" in output and RDS_CA_BUNDLE_URL in output
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl_in_use(tls_server.url("127.0.0.2"), ca_bundle=str(tls_server.wrong_ca))


def test_a_remote_host_without_a_bundle_is_verified_against_the_system_cas(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No bundle set: still TLS, still verified (the system's CAs do not know the suite's CA): refused."""
    code, output = migrate(tls_server.url("127.0.0.2"), monkeypatch, None)
    assert code == 2 and "failed TLS verification" in output, output


def test_a_host_name_the_certificate_does_not_name_is_refused(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = migrate(tls_server.url("127.0.0.1"), monkeypatch, tls_server.right_ca)
    assert code == 2 and "failed TLS verification" in output and "mismatch" in output, output


def test_a_server_without_tls_is_refused_when_tls_is_required(
    pg_server_url: str, monkeypatch: pytest.MonkeyPatch, tls_server: TlsServer
) -> None:
    """The suite's own server has ssl=off: with a CA bundle set, a plain-text fallback is not taken."""
    code, output = migrate(pg_server_url, monkeypatch, tls_server.right_ca)
    assert code == 2 and "does not offer TLS" in output, output


def test_a_local_server_stays_plain_and_easy(tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CA_BUNDLE_ENV, raising=False)
    assert not ssl_in_use(tls_server.url("127.0.0.1"))
    assert not ssl_in_use(tls_server.url("localhost"))


def test_remote_hosts_get_verified_tls_and_local_ones_plain_text(tmp_path: Path) -> None:
    remote = tls_context("portal.cluster-abc.us-west-2.rds.amazonaws.com", None)
    assert isinstance(remote, ssl.SSLContext)
    assert remote.verify_mode == ssl.CERT_REQUIRED and remote.check_hostname
    assert tls_context("localhost", None) is False and tls_context("127.0.0.1", None) is False
    bundle = make_authority("x").write(tmp_path / "ca.pem")
    local_with_bundle = tls_context("127.0.0.1", str(bundle))
    assert isinstance(local_with_bundle, ssl.SSLContext) and local_with_bundle.check_hostname
    with pytest.raises(ValueError, match="is not a readable PEM CA bundle"):
        tls_context("db.internal", str(tmp_path / "absent.pem"))
