"""TLS to the database (verified chain and name for every host but a local one), and one line saying why a
connection failed."""

from __future__ import annotations

import ssl
from typing import Any

from sqlalchemy.engine import URL

from annotation_reconciler.db.urls import (
    CA_BUNDLE_ENV,
    RDS_CA_BUNDLE_URL,
    TLS_SERVER_NAME_ENV,
    check_server_name,
    show_url,
)
from annotation_reconciler.errors import DatabaseUrlError

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


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
