"""Database URLs: read, checked, shown without their password; libpq's TLS parameters understood or refused; an RDS
secret's JSON made a URL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from annotation_reconciler.errors import DatabaseUrlError
from annotation_reconciler.names import Env

DRIVER = "postgresql+pg8000"
CA_BUNDLE_ENV = Env.DB_CA_BUNDLE
#: The name the database's certificate must carry when the URL's host is not it (``localhost`` through a tunnel).
TLS_SERVER_NAME_ENV = Env.DB_TLS_SERVER_NAME
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"


def mask_password(raw: str) -> str:
    """``raw`` with everything between ``://`` and the *last* ``@`` replaced by ``***``.

    Splitting at the last ``@`` hides a password that itself holds an ``@`` (unescaped) whole;
    the user name is hidden too, since nothing says where it ends::

        >>> mask_password("postgresql+pg8000://rec:Pa@ss-word@host/db")
        'postgresql+pg8000://***@host/db'
        >>> mask_password("postgresql+pg8000://host/db")
        'postgresql+pg8000://host/db'
    """
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "", raw
    _credentials, at, tail = rest.rpartition("@")
    if not at:
        return raw
    return f"{scheme}{sep}***@{tail}"


def show_url(url: URL) -> str:
    """A URL fit for output: the password never, whatever characters it holds."""
    return mask_password(url.render_as_string(hide_password=False))


_HEX = frozenset("0123456789abcdefABCDEF")


def _check_escaped(raw: str) -> None:
    """Refuse a URL whose user or password holds an unescaped URL-reserved character: it would be split in the
    wrong place (``rec:Pa@ss-word@host`` reads as host ``ss-word@host``) and shown in part."""
    _scheme, sep, rest = raw.partition("://")
    credentials, at, _tail = rest.rpartition("@")
    if not sep or not at:
        return
    bad = sorted({c for c in credentials if c in "@/?#"})
    percents = [i for i, c in enumerate(credentials) if c == "%"]
    if any(not set(credentials[i + 1 : i + 3]) <= _HEX or len(credentials[i + 1 : i + 3]) < 2 for i in percents):
        bad.append("%")
    if bad:
        raise DatabaseUrlError(
            f"the user or password in the database URL {mask_password(raw)!r} holds URL-reserved characters "
            f"({' '.join(bad)}) that are not percent-encoded: write @ as %40, / as %2F, ? as %3F, # as %23 and "
            "% as %25 (python3 -c 'import urllib.parse, getpass; print(urllib.parse.quote(getpass.getpass(), "
            'safe=""))\' prints it encoded), or give the Secrets Manager secret with --db-secret-arn'
        )


def normalize_url(raw: str) -> URL:
    """Parse ``raw`` and make sure it names PostgreSQL through pg8000.

    ``postgresql://`` and ``postgres://`` are read as pg8000; another driver is refused::

        >>> normalize_url("postgresql://u@localhost/portal").drivername
        'postgresql+pg8000'
    """
    raw = raw.strip()
    _check_escaped(raw)
    try:
        url = make_url(raw)
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


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
#: libpq's TLS and addressing parameters, which pg8000 does not take (it would fail with a TypeError).
_LIBPQ_REFUSED = frozenset(
    {
        "hostaddr",
        "requiressl",
        "sslcert",
        "sslcertmode",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslnegotiation",
        "sslpassword",
        "sslsni",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
    }
)
_TLS_HELP = (
    f"annotation-reconciler always verifies the server's certificate chain and name (libpq's verify-full) for a "
    f"host other than localhost: give the CA bundle with {CA_BUNDLE_ENV} (or sslrootcert=PATH), and when "
    f"connecting through a tunnel to localhost, the database's real host name with {TLS_SERVER_NAME_ENV} "
    "(--db-tls-server-name)"
)


@dataclass(frozen=True)
class UrlTls:
    """What libpq's ``sslmode``/``sslrootcert`` in a URL ask for: verified TLS whatever the host, against a bundle
    (``None``: the system's CAs)."""

    required: bool = False
    root_cert: str | None = None


def split_tls_parameters(url: URL) -> tuple[URL, UrlTls]:
    """``url`` without libpq's TLS parameters, and what they asked for.

    ``sslmode=verify-full`` and ``sslrootcert=PATH`` (or ``system``) are understood; any other ``sslmode`` (which
    would verify less, or nothing) and libpq's other TLS parameters are refused, naming what to use instead::

        >>> split_tls_parameters(normalize_url("postgresql://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem"))[1]
        UrlTls(required=True, root_cert='/ca.pem')
    """
    query = dict(url.query)
    mode = query.pop("sslmode", None)
    root = query.pop("sslrootcert", None)
    for name, value in (("sslmode", mode), ("sslrootcert", root)):
        if isinstance(value, tuple):
            raise DatabaseUrlError(f"the database URL gives {name} more than once: give it once")
    refused = sorted(set(query) & _LIBPQ_REFUSED)
    if refused:
        raise DatabaseUrlError(
            f"the database URL sets {', '.join(refused)}, which annotation-reconciler does not take: {_TLS_HELP}"
        )
    if mode is not None and mode != "verify-full":
        raise DatabaseUrlError(
            f"the database URL sets sslmode={mode}, which would verify less than the reconciler requires: remove it "
            f"or write sslmode=verify-full; {_TLS_HELP}"
        )
    root_cert = None if root in (None, "", "system") else str(root)
    tls = UrlTls(required=mode is not None or root is not None, root_cert=root_cert)
    return url.set(query=query), tls


def check_server_name(name: str, source: str = TLS_SERVER_NAME_ENV) -> str:
    """``name`` if it is a DNS host name (what the certificate must name); else a :class:`DatabaseUrlError`."""
    if not _HOST_NAME.match(name):
        raise DatabaseUrlError(
            f"{source}={name!r} is not a host name: give the database's own DNS name, as its certificate names it "
            "(e.g. the RDS endpoint portal.cluster-abc.us-west-2.rds.amazonaws.com), without scheme or port"
        )
    return name


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
