"""Engines and sessions for the portal database (PostgreSQL through pg8000 only)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

DRIVER = "postgresql+pg8000"


class DatabaseUrlError(ValueError):
    """The database URL cannot be used; the message says what to set instead."""


def mask_password(raw: str) -> str:
    """``raw`` with the password of its ``user:password@`` part replaced by ``***``.

    >>> mask_password("postgresql-pg8000://reconciler:s3cret@db/portal")
    'postgresql-pg8000://reconciler:***@db/portal'
    """
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "", raw
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return raw
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def normalize_url(raw: str) -> URL:
    """Parse ``raw`` and make sure it names PostgreSQL through pg8000.

    ``postgresql://`` and ``postgres://`` are read as pg8000; another driver is refused::

        >>> normalize_url("postgresql://u@localhost/portal").drivername
        'postgresql+pg8000'
    """
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        raise DatabaseUrlError(
            f"cannot parse the database URL {mask_password(raw)!r}: use postgresql+pg8000://USER:PASSWORD@HOST:PORT/DBNAME"
        ) from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername=DRIVER)
    if url.drivername != DRIVER:
        raise DatabaseUrlError(
            f"the database URL uses the driver {url.drivername!r}: annotation-reconciler speaks "
            f"PostgreSQL through pg8000 only, use {DRIVER}://USER:PASSWORD@HOST:PORT/DBNAME"
        )
    if not url.host:
        raise DatabaseUrlError("the database URL has no host: use postgresql+pg8000://USER@HOST:PORT/DBNAME")
    return url


def url_from_secret(secret: dict[str, Any]) -> URL:
    """Build a URL from an RDS-style Secrets Manager secret (username, password, host, port, dbname)."""
    missing = [k for k in ("username", "password", "host") if not secret.get(k)]
    if missing:
        raise DatabaseUrlError(f"the database secret lacks {', '.join(missing)}: store an RDS secret JSON")
    return URL.create(
        DRIVER,
        username=str(secret["username"]),
        password=str(secret["password"]),
        host=str(secret["host"]),
        port=int(secret.get("port") or 5432),
        database=str(secret.get("dbname") or secret.get("database") or "postgres"),
    )


def read_secret_url(secret_arn: str) -> URL:
    """Fetch the database credentials from Secrets Manager at run time (never from the environment)."""
    import boto3

    client = boto3.client("secretsmanager")
    # botocore logs whole response bodies at DEBUG: never let it log this one, whatever the log level
    quiet = logging.getLogger("botocore")
    level = quiet.level
    quiet.setLevel(max(level, logging.INFO))
    try:
        value = client.get_secret_value(SecretId=secret_arn)["SecretString"]
    finally:
        quiet.setLevel(level)
    try:
        secret = json.loads(value)
    except json.JSONDecodeError:
        raise DatabaseUrlError(f"the secret {secret_arn} is not JSON: store an RDS secret JSON") from None
    return url_from_secret(secret)


def _no_delay(dbapi_connection: Any) -> None:
    """TCP_NODELAY on pg8000's socket: a statement whose parameters overflow pg8000's 8 KiB write
    buffer otherwise waits for the server's delayed ACK (about 40 ms a statement, see BENCHMARKS.md)."""
    sock = getattr(dbapi_connection, "_usock", None)  # pg8000 keeps its socket here; absent: nothing to do
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def make_engine(url: str | URL, *, pool_size: int = 2, echo: bool = False, pre_ping: bool = True) -> Engine:
    """Create an engine for ``url`` (validated); small pool, pre-ping (connections idle between Lambda
    invocations go stale), UTC session time zone."""
    parsed = normalize_url(url) if isinstance(url, str) else url
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=pre_ping,
        pool_recycle=300,
        echo=echo,
    )

    @event.listens_for(engine, "connect")
    def _set_utc(dbapi_connection: Any, _record: Any) -> None:
        _no_delay(dbapi_connection)
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.commit()  # leave no transaction open (AUTOCOMMIT users need a clean start)

    return engine


@lru_cache(maxsize=4)
def cached_engine(url: str) -> Engine:
    """One engine per URL per process (Lambda containers reuse it across invocations)."""
    return make_engine(url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session
