"""Evidence from S3 beyond the listings: what surrounds a suspicious ``Annotations/`` prefix.

- The dataset folder of an empty ``Annotations/`` prefix: does it still hold other objects? ``lifecycle.decide``
  holds a fresh candidate whose prefix lists no metadata unless it knows (``Evidence.neighbours``): one or two
  LISTs of one key each, only for those prefixes.
- The folders beside each folder of a suspicious prefix (one that lacks a row's key), from the dataset folder
  down: a twin spelled differently makes the row unknown (``Evidence.siblings``): one LIST with a delimiter per
  level, only for those prefixes.

Every path that deletes gathers both through here::

    around = dataset_neighbours(storage, listings, concurrency=32)     # -> Surroundings
    delete_stale(conn, candidates, listings, layout, policy, ..., neighbours=around)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from annotation_reconciler import guards
from annotation_reconciler.storage import S3Storage


@dataclass(frozen=True)
class Surroundings:
    """What S3 holds around listed ``Annotations/`` prefixes: per empty prefix, whether its dataset folder holds
    other objects; per parent folder of a suspicious prefix, the folders in it (or the error)."""

    neighbours: Mapping[str, bool | BaseException] = field(default_factory=dict)
    siblings: Mapping[str, frozenset[str] | BaseException] = field(default_factory=dict)


def dataset_neighbours(
    storage: S3Storage,
    listings: Mapping[str, frozenset[str] | BaseException],
    *,
    concurrency: int,
    suspicious: Iterable[str] | None = None,
) -> Surroundings:
    """For each completely listed ``Annotations/`` prefix without metadata: does its dataset folder hold any other
    object (True / False), or the error that stopped S3 from saying; and the folders beside each folder of the
    ``suspicious`` prefixes (default: every completely listed one) from the dataset folder down."""
    folders = {p: guards.dataset_folder(p) for p in guards.empty_prefixes(listings)}
    if suspicious is None:
        suspicious = [p for p, listing in listings.items() if isinstance(listing, frozenset)]
    return Surroundings(
        dict(storage.holds_other_many(folders, concurrency=concurrency)),
        folder_siblings(storage, suspicious, concurrency=concurrency),
    )


def folder_siblings(
    storage: S3Storage, prefixes: Iterable[str], *, concurrency: int
) -> dict[str, frozenset[str] | BaseException]:
    """The folders in each parent folder of these ``Annotations/`` prefixes, from the dataset folder down (one LIST
    with a delimiter per parent, shared by the prefixes under it)."""
    parents = {parent for prefix in prefixes for parent, _ in guards.folder_levels(prefix)}
    return dict(storage.folders_many(parents, concurrency=concurrency))
