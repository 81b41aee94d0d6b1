"""What the engine does to pg8000: TCP_NODELAY on its socket, and its statement rewrite remembered per text."""

from __future__ import annotations

import socket
from functools import lru_cache
from typing import Any

import pg8000.dbapi as pg8000_dbapi
import pg8000.legacy as pg8000_legacy

_convert_paramstyle = pg8000_dbapi.convert_paramstyle


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
