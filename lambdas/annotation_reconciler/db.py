"""Engines and sessions for the portal database (PostgreSQL through pg8000 only)."""

from __future__ import annotations

import datetime
import logging
import os
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pg8000.dbapi as pg8000_dbapi
import pg8000.legacy as pg8000_legacy
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from annotation_reconciler.errors import DatabaseUrlError
from annotation_reconciler.names import Env

log = logging.getLogger(__name__)
_convert_paramstyle = pg8000_dbapi.convert_paramstyle
DRIVER = "postgresql+pg8000"
#: Seconds to wait for a TCP connection (and the TLS and startup exchange) to the database.
CONNECT_TIMEOUT = 10
#: Seconds a statement's socket read may wait once connected (a dead server fails here, not at Lambda's timeout).
READ_TIMEOUT = 300
#: How long a secret read from Secrets Manager is reused before it is read again (seconds).
SECRET_MAX_AGE = 300
CA_BUNDLE_ENV = Env.DB_CA_BUNDLE
#: The name the database's certificate must carry when the URL's host is not it (``localhost`` through a tunnel).
TLS_SERVER_NAME_ENV = Env.DB_TLS_SERVER_NAME
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Every session's name lookup: no schema a less-trusted role may write (the ledger's are never on it).
SEARCH_PATH_SQL = "SET search_path TO pg_catalog, public"


def text_array(values: Iterable[str | None]) -> str:
    """A PostgreSQL ``text[]`` literal of ``values``, to bind as one parameter (``CAST(:p AS text[])``): pg8000 escapes
    a list character by character in Python (~8 µs a key on this machine, 3 ms for an event batch's 400 stored forms);
    this is two ``str.replace``. Every element is quoted (``\\`` and ``"`` escaped), None is NULL.

    >>> text_array(['a "b"', "c\\d", None, "", "{x,y}"])
    '{"a \\\\"b\\\\"","c\\\\\\\\d",NULL,"","{x,y}"}'
    """
    return (
        "{"
        + ",".join("NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "}"
    )


def int_array(values: Iterable[int | None]) -> str:
    """A PostgreSQL array literal of integers (``CAST(:p AS integer[])``), for the same reason as :func:`text_array`.

    >>> int_array([3, None, -1])
    '{3,NULL,-1}'
    """
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"


def time_array(values: Iterable[datetime.datetime | None]) -> str:
    """A PostgreSQL array literal of timestamps (``CAST(:p AS timestamptz[])``), for the same reason as
    :func:`text_array`; a value without a time zone is read in the session's (UTC, as pg8000 sends one).

    >>> time_array([datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC), None])
    '{"2026-01-02T03:04:05.000006+00:00",NULL}'
    """
    return text_array(None if v is None else v.isoformat() for v in values)


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


def is_authentication_failure(exc: BaseException) -> bool:
    """Whether PostgreSQL refused the credentials (SQLSTATE 28P01 invalid password, 28000 not authorized)."""
    for error in (exc, getattr(exc, "orig", None), exc.__cause__):
        args = getattr(error, "args", ())
        if args and isinstance(args[0], dict) and args[0].get("C") in ("28P01", "28000"):
            return True
    return False


def is_local_host(host: str | None) -> bool:
    """A host on this machine (or a Unix socket directory), where plain text is allowed."""
    return host is None or host.startswith("/") or host in LOCAL_HOSTS


class _NamedServerContext(ssl.SSLContext):
    """An ``SSLContext`` that checks the certificate against :attr:`server_name` (and sends it as SNI), whatever
    host the socket reached: pg8000 passes the URL's host, which is ``localhost`` through a tunnel."""

    server_name: str = ""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def tls_context(
    host: str | None, ca_bundle: str | None, *, server_name: str | None = None, required: bool = False
) -> ssl.SSLContext | bool:
    """The ``ssl_context`` pg8000 gets: verified TLS (certificate and host name) for every host but a local one,
    which is plain text (``False``: pg8000 neither tries TLS nor falls back) unless a CA bundle or a server name is
    given or TLS is ``required``. ``server_name`` is the name the certificate must carry instead of ``host``."""
    if not (ca_bundle or server_name or required) and is_local_host(host):
        return False
    context: ssl.SSLContext
    try:
        if server_name:
            context = _NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
            context.server_name = check_server_name(server_name)
            context.verify_flags = ssl.create_default_context().verify_flags
            if ca_bundle:
                context.load_verify_locations(cafile=ca_bundle)
            else:
                context.load_default_certs()
        else:  # only the bundle's CAs when one is given (no public CA signs a private database), else the system's
            context = ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise DatabaseUrlError(
            f"{CA_BUNDLE_ENV}={ca_bundle!r} is not a readable PEM CA bundle ({exc}): "
            f"download it, e.g. {RDS_CA_BUNDLE_URL}"
        ) from None
    return context


def connection_failure(exc: BaseException, url: URL) -> str:
    """One line saying why connecting to ``url`` failed and what to check, with no password in it."""
    chain: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and len(chain) < 6:
        chain.append(error)
        error = error.__cause__ or error.__context__
    text_ = " ".join(str(e) for e in chain)
    where = show_url(url)
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or "CERTIFICATE_VERIFY_FAILED" in text_:
        detail = next((str(e) for e in chain if isinstance(e, ssl.SSLError)), "certificate verify failed")
        return (
            f"the database server at {where} failed TLS verification ({detail[:200]}): set {CA_BUNDLE_ENV} to the "
            f"CA bundle that signed its certificate (for RDS: {RDS_CA_BUNDLE_URL}) and connect by the host name "
            f"the certificate names; through a tunnel to localhost, set {TLS_SERVER_NAME_ENV} "
            "(--db-tls-server-name) to the database's real host name"
        )
    if "Server refuses SSL" in text_:
        return (
            f"the database server at {where} does not offer TLS, which is required for it: enable ssl on the "
            f"server (RDS always offers it), or unset {CA_BUNDLE_ENV} for a plain local server"
        )
    if is_authentication_failure(exc):
        return f"the database at {where} refused the credentials: check the user and password (or the secret)"
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return f"cannot connect to the database at {where} ({reason}): check the URL or secret and that the server is up"


def _no_delay(dbapi_connection: Any) -> None:
    """TCP_NODELAY on pg8000's socket: a statement whose parameters overflow pg8000's 8 KiB write
    buffer otherwise waits for the server's delayed ACK (about 40 ms a statement, see BENCHMARKS.md)."""
    sock = getattr(dbapi_connection, "_usock", None)  # pg8000 keeps its socket here; absent: nothing to do
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@lru_cache(maxsize=256)
def _format_to_numbered(query: str) -> str:
    return str(_convert_paramstyle("format", query, ())[0])


def _cached_convert_paramstyle(style: str, query: str, args: Any) -> tuple[str, Any]:
    """pg8000's ``convert_paramstyle``, remembered per statement text for the ``format`` style SQLAlchemy uses: pg8000
    scans each statement character by character in Python on every execution (0.5-1 ms for the ledger's longer
    statements, a tenth of an event batch's CPU), and for ``format`` the result is the rewritten text (``%s`` ->
    ``$n``, a function of the text alone) with the arguments as given."""
    if style == "format":
        return _format_to_numbered(query), args
    result: tuple[str, Any] = _convert_paramstyle(style, query, args)
    return result


def _remember_paramstyle_conversions() -> None:
    for module in (pg8000_dbapi, pg8000_legacy):  # SQLAlchemy's cursors are pg8000.legacy's
        if module.convert_paramstyle is not _cached_convert_paramstyle:
            module.convert_paramstyle = _cached_convert_paramstyle


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
