"""Counts with their noun in agreement, for every message that states a count: "1 annotation", "2 annotations".

>>> count(1, "annotation"), count(0, "annotation"), count(3, "stale annotation")
('1 annotation', '0 annotations', '3 stale annotations')
>>> count(2, "voxel spacing"), count(1, "prefix", "prefixes"), count(2, "prefix", "prefixes")
('2 voxel spacings', '1 prefix', '2 prefixes')
"""

from __future__ import annotations


def noun(n: int, singular: str, plural: str | None = None) -> str:
    """``singular`` for exactly one, else ``plural`` (by default ``singular`` + "s")."""
    return singular if n == 1 else (plural or singular + "s")


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` followed by its noun in agreement."""
    return f"{n} {noun(n, singular, plural)}"
