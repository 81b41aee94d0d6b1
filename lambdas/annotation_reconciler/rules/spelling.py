"""Spelling twins, pure: two names that S3 keeps apart but a person, a URL or an event would take for one.

Two keys (or folder names) are *twins* when they differ but read the same once percent/plus-encoding is undone,
letter case folded and Unicode normalized. A row whose key has a twin in S3, at any level from its dataset folder
down, is unknown, never missing (``lifecycle.decide``)::

    >>> is_twin("10001/TS 1+2 é/", "10001/TS+1%2B2+%C3%A9/"), is_twin("TS_002/", "ts_002/"), is_twin("a/", "a/")
    (True, True, False)

The folders to compare, from the dataset folder down, are ``guards.folder_levels``.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote_plus

#: Encoded twice is still the same name (``%252B`` is ``%2B`` is ``+``); more rounds than this are not undone.
DECODE_ROUNDS = 3


def spelling_form(name: str) -> str:
    """The form of a name that ignores percent/plus-encoding, letter case and Unicode normalization.

    >>> spelling_form("TS%5F002") == spelling_form("ts_002") == spelling_form("TS\uff3f002")
    True
    """
    if name.isascii() and "%" not in name and "+" not in name:
        return name.lower()  # nothing to decode; NFKC leaves ASCII as it is, and casefold is lower() on it
    for _ in range(DECODE_ROUNDS):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def is_twin(a: str, b: str) -> bool:
    """Do ``a`` and ``b`` differ, yet only in spelling?"""
    return a != b and spelling_form(a) == spelling_form(b)


def twin_folder(parent: str, name: str, folders: frozenset[str]) -> str | None:
    """The first folder of ``parent`` (full prefixes, as a LIST with a delimiter names them) that is a twin of
    ``parent + name``, or None."""
    for folder in sorted(folders):
        if folder.startswith(parent) and is_twin(folder[len(parent) :], name):
            return folder
    return None
