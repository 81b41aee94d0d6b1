"""Arrays bound as one PostgreSQL array literal each: pg8000 converts a list parameter element by element in
Python."""

from __future__ import annotations

import datetime
from collections.abc import Iterable


def text_array(values: Iterable[str | None]) -> str:
    r"""A PostgreSQL ``text[]`` literal of ``values``, to bind as one parameter (``CAST(:p AS text[])``): pg8000 escapes
    a list character by character in Python (~8 µs a key on this machine, 3 ms for an event batch's 400 stored forms);
    this is two ``str.replace``. Every element is quoted (``\`` and ``"`` escaped), None is NULL.

    >>> text_array(['a "b"', "c\\d", None, "", "{x,y}"])
    '{"a \\"b\\"","c\\\\d",NULL,"","{x,y}"}'
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
