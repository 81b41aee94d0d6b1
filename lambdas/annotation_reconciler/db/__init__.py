"""Engines for the portal database (PostgreSQL through pg8000 only). The parts: :mod:`.urls` (URLs and their TLS
parameters), :mod:`.tls` (the TLS context, why a connection failed), :mod:`.driver` (what the engine does to pg8000),
:mod:`.arrays` (array parameters as one literal)."""

from __future__ import annotations

import logging
import os
import socket
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL

from annotation_reconciler.db.arrays import int_array, text_array, time_array
from annotation_reconciler.db.driver import _no_delay, _remember_paramstyle_conversions
from annotation_reconciler.db.tls import (
    LOCAL_HOSTS,
    connection_failure,
    is_authentication_failure,
    is_local_host,
    tls_context,
)
from annotation_reconciler.db.urls import (
    CA_BUNDLE_ENV,
    DRIVER,
    RDS_CA_BUNDLE_URL,
    TLS_SERVER_NAME_ENV,
    UrlTls,
    check_server_name,
    mask_password,
    normalize_url,
    show_url,
    split_tls_parameters,
    url_from_secret,
)
from annotation_reconciler.errors import DatabaseUrlError

__all__ = [
    "CA_BUNDLE_ENV",
    "CONNECT_TIMEOUT",
    "DRIVER",
    "LOCAL_HOSTS",
    "RDS_CA_BUNDLE_URL",
    "READ_TIMEOUT",
    "SEARCH_PATH_SQL",
    "SECRET_MAX_AGE",
    "TLS_SERVER_NAME_ENV",
    "DatabaseSecret",
    "UrlTls",
    "cached_engine",
    "cached_secret_engine",
    "check_server_name",
    "connection_failure",
    "int_array",
    "is_authentication_failure",
    "is_local_host",
    "make_engine",
    "mask_password",
    "normalize_url",
    "secret_engine",
    "show_url",
    "split_tls_parameters",
    "text_array",
    "time_array",
    "tls_context",
    "url_from_secret",
]

log = logging.getLogger(__name__)
#: Seconds to wait for a TCP connection (and the TLS and startup exchange) to the database.
CONNECT_TIMEOUT = 10
#: Seconds a statement's socket read may wait once connected (a dead server fails here, not at Lambda's timeout).
READ_TIMEOUT = 300
#: How long a secret read from Secrets Manager is reused before it is read again (seconds).
SECRET_MAX_AGE = 300
#: Every session's name lookup: no schema a less-trusted role may write (the ledger's are never on it).
SEARCH_PATH_SQL = "SET search_path TO pg_catalog, public"


class DatabaseSecret:
    """The database credentials in a Secrets Manager secret, read with powertools' parameters utility.

    A value is kept ``max_age`` seconds, then read again, so a rotated password reaches new
    connections without a restart; :meth:`url` with ``fresh=True`` skips the cache (after the server
    refused the cached password).
    """

    def __init__(self, secret_arn: str, *, max_age: int = SECRET_MAX_AGE, client: Any = None) -> None:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        from annotation_reconciler.aws import make_client

        self.secret_arn = secret_arn
        self.max_age = max_age
        self.provider = SecretsProvider(boto3_client=client or make_client("secretsmanager"))

    def url(self, *, fresh: bool = False) -> URL:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

        # botocore logs whole response bodies at DEBUG: never let it log this one, whatever the log level
        quiet = logging.getLogger("botocore")
        level = quiet.level
        quiet.setLevel(max(level, logging.INFO))
        try:
            value = self.provider.get(self.secret_arn, max_age=self.max_age, transform="json", force_fetch=fresh)
        except TransformParameterError:
            raise DatabaseUrlError(f"the secret {self.secret_arn} is not JSON: store an RDS secret JSON") from None
        except GetParameterError as exc:
            reason = str(exc).splitlines()[0][:300]
            raise DatabaseUrlError(f"cannot read the database secret {self.secret_arn}: {reason}") from None
        finally:
            quiet.setLevel(level)
        if not isinstance(value, dict):
            raise DatabaseUrlError(f"the secret {self.secret_arn} is not a JSON object: store an RDS secret JSON")
        return url_from_secret(value)


def make_engine(
    url: str | URL,
    *,
    pool_size: int = 2,
    echo: bool = False,
    pre_ping: bool = True,
    ca_bundle: str | None = None,
    server_name: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> Engine:
    """Create an engine for ``url`` (validated); small pool, pre-ping (connections idle between Lambda
    invocations go stale), UTC session time zone, ``search_path`` = ``pg_catalog, public``.

    The search path names no schema that a less-trusted role can write (CVE-2018-1058): ``pg_catalog`` first,
    so that nothing in ``public`` can shadow a built-in, then the portal's tables. The ledger's schemas are
    never on it: every ledger name the package issues is schema-qualified.

    TLS: a host other than localhost gets verified TLS (certificate chain and host name) against
    ``ca_bundle`` (default ``$RECONCILER_DB_CA_BUNDLE``, else the system's CAs) and is refused in plain
    text; a local host is plain text unless a CA bundle or a server name is given. ``server_name`` (default
    ``$RECONCILER_DB_TLS_SERVER_NAME``) is the name the certificate is checked against instead of the URL's host
    (``localhost`` through a tunnel). libpq's ``sslmode=verify-full`` and ``sslrootcert`` in the URL are
    understood, weaker modes refused (:func:`split_tls_parameters`). Connecting gives up after
    ``connect_timeout`` seconds, a statement's read after :data:`READ_TIMEOUT`.
    """
    parsed, url_tls = split_tls_parameters(normalize_url(url) if isinstance(url, str) else url)
    bundle = ca_bundle or os.environ.get(CA_BUNDLE_ENV, "").strip() or None
    if url_tls.root_cert and bundle and os.path.abspath(url_tls.root_cert) != os.path.abspath(bundle):
        raise DatabaseUrlError(
            f"the database URL's sslrootcert={url_tls.root_cert!r} contradicts {CA_BUNDLE_ENV}={bundle!r}: "
            "give the CA bundle in one place"
        )
    bundle = url_tls.root_cert or bundle
    name = server_name or os.environ.get(TLS_SERVER_NAME_ENV, "").strip() or None
    ssl_context = tls_context(parsed.host, bundle, server_name=name, required=url_tls.required)
    _remember_paramstyle_conversions()
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=pre_ping,
        pool_recycle=300,
        echo=echo,
        connect_args={"ssl_context": ssl_context, "timeout": connect_timeout},
    )

    @event.listens_for(engine, "connect")
    def _set_session(dbapi_connection: Any, _record: Any) -> None:
        _no_delay(dbapi_connection)
        sock = getattr(dbapi_connection, "_usock", None)
        if isinstance(sock, socket.socket):
            sock.settimeout(READ_TIMEOUT)  # past the connect: long statements are fine, a dead peer is not
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        # Built-ins first, then the portal's tables; the ledger's names are always written schema-qualified.
        cursor.execute(SEARCH_PATH_SQL)
        cursor.close()
        dbapi_connection.commit()  # leave no transaction open (AUTOCOMMIT users need a clean start)

    return engine


def secret_engine(secret: DatabaseSecret, **options: Any) -> Engine:
    """An engine whose every new connection takes its credentials from ``secret`` (cached ``max_age`` seconds).

    When the server refuses them (the password was rotated since they were read), the secret is read
    again, bypassing the cache, and the connection is tried once more: warm Lambda containers and
    recycled pool connections follow a rotation without a restart.
    """
    engine = make_engine(secret.url(), **options)

    def _with(cparams: dict[str, Any], url: URL) -> dict[str, Any]:
        return {
            **cparams,
            "user": url.username,
            "password": url.password,
            "host": url.host,
            "port": url.port,
            "database": url.database,
        }

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        try:
            return dialect.connect(*cargs, **_with(cparams, secret.url()))
        except Exception as exc:
            if not is_authentication_failure(exc):
                raise
            log.warning("the database refused the secret's credentials: reading the secret again and retrying once")
            return dialect.connect(*cargs, **_with(cparams, secret.url(fresh=True)))

    return engine


@lru_cache(maxsize=4)
def cached_engine(url: str) -> Engine:
    """One engine per URL per process (Lambda containers reuse it across invocations)."""
    return make_engine(url)


@lru_cache(maxsize=4)
def cached_secret_engine(secret_arn: str) -> Engine:
    """One engine per secret per process; its credentials follow the secret (see :func:`secret_engine`)."""
    return secret_engine(DatabaseSecret(secret_arn))
