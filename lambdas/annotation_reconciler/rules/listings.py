"""What a complete listing of ``Annotations/`` prefixes says, key by key (pure): which prefixes a set of keys needs
listed, under which a key could be spelled, which listed prefixes lack a row's key, and which metadata keys no row
points to. ``lifecycle.decide`` and every path that lists read them::

    >>> prefixes_to_list(["1/TS/Reconstructions/VoxelSpacing1.000/Annotations/100/a-1.0.json"])
    ['1/TS/Reconstructions/VoxelSpacing1.000/Annotations/']
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Literal

from annotation_reconciler.rules.paths import is_metadata_key

_FORMS: tuple[Literal["NFC", "NFD", "NFKC", "NFKD"], ...] = ("NFC", "NFD", "NFKC", "NFKD")


def metadata_folder(key: str) -> str:
    """The ``…/Annotations/`` prefix that holds a metadata key (its folder's parent)."""
    return key.rsplit("/", 2)[0] + "/"


def prefixes_to_list(keys: Iterable[str]) -> list[str]:
    """Every prefix whose listing :func:`decide` needs to judge these keys, sorted."""
    return sorted({prefix for key in keys for prefix in listing_prefixes(key)})


def suspicious_prefixes(
    keys: Iterable[str | None], listings: Mapping[str, frozenset[str] | BaseException]
) -> list[str]:
    """The completely listed ``Annotations/`` prefixes that lack one of these keys, sorted: the prefixes whose
    folders, from the dataset folder down, :func:`decide` must see without a spelling twin before it may call a
    row missing (``Evidence.siblings``; one LIST with a delimiter per level, only for these)."""
    found = set()
    for key in keys:
        if key is None:
            continue
        listing = listings.get(metadata_folder(key))
        if isinstance(listing, frozenset) and key not in listing:
            found.add(metadata_folder(key))
    return sorted(found)


def untracked_metadata(
    listings: Mapping[str, frozenset[str] | BaseException], tracked: Iterable[str]
) -> dict[str, list[str]]:
    """Each completely listed ``Annotations/`` prefix -> the metadata keys in it that no row points to (not in
    ``tracked``), sorted; a prefix with none maps to [] (its earlier untracked keys are tracked or gone now).

    >>> untracked_metadata({"a/Annotations/": frozenset({"a/Annotations/1/x-1.0.json", "a/Annotations/1/y-1.0.json",
    ...     "a/Annotations/1/1-x-1.0_point.ndjson"})}, ["a/Annotations/1/x-1.0.json"])
    {'a/Annotations/': ['a/Annotations/1/y-1.0.json']}
    """
    known = set(tracked)
    return {
        prefix: sorted(k for k in listing if k not in known and is_metadata_key(k))
        for prefix, listing in sorted(listings.items())
        if isinstance(listing, frozenset)
    }


# --- the one decision ---------------------------------------------------------------------


def canonical(key: str) -> str:
    """The spelling-blind form of a key: two keys with one canonical form differ only in Unicode
    normalization (NFC, NFD, NFKC, NFKD) or letter case.

    >>> canonical("a/Prote\u0301ine-1.0.json") == canonical("a/prot\u00e9ine-1.0.json")
    True
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", key).casefold())


def listing_prefixes(key: str) -> tuple[str, ...]:
    """The ``Annotations/`` prefixes whose complete listings can prove ``key`` absent: its own, and
    those of its other Unicode spellings (a run folder spelled in NFD lists apart from its NFC twin).

    >>> listing_prefixes("1/TS/Reconstructions/VoxelSpacing1.000/Annotations/100/a-1.0.json")
    ('1/TS/Reconstructions/VoxelSpacing1.000/Annotations/',)
    """
    if key.isascii():  # every Unicode form of plain ASCII is itself
        return (metadata_folder(key),)
    spellings = {key, *(unicodedata.normalize(form, key) for form in _FORMS)}
    return tuple(sorted({metadata_folder(spelling) for spelling in spellings}))
