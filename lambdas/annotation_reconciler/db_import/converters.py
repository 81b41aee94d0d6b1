"""Converters: a metadata JSON value to a column's value, or a ``TypeError`` that says what it is not.

The item importers (``items.py``) name one per typed column; a failure becomes a problem of the item.
"""

from __future__ import annotations

import datetime
from typing import Any


def to_datetime(value: Any) -> datetime.datetime:
    """``2023-04-01`` or an ISO timestamp, as an aware datetime (UTC when no zone is given)."""
    if not isinstance(value, str):
        raise TypeError("not a date string")
    if len(value) == 10:
        day = datetime.date.fromisoformat(value)
        return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    moment = datetime.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def to_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError("not a whole number")
    return int(value)


def to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return float(value)


def to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("not true/false")
    return value


def to_str(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError("not text")
    return str(value)


__all__ = ["to_bool", "to_datetime", "to_float", "to_int", "to_str"]
