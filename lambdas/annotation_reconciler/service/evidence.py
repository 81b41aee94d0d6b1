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

Where nearly every prefix will be suspicious (the purge: its rows were quarantined because their key was absent),
one LIST without a delimiter of each run folder (:func:`wide_folder`) answers both: :func:`split_wide` takes from it
the ``Annotations/`` prefixes' listings and the folders of every level below the run folder, so only the dataset
folders are left for a LIST with a delimiter (``folder_siblings(..., known=...)``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from annotation_reconciler.errors import StorageError
from annotation_reconciler.rules import guards
from annotation_reconciler.rules.listings import metadata_folder, suspicious_prefixes
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
    ``suspicious`` prefixes (default: every completely listed one) from the dataset folder down. The requests are
    :class:`SurroundingsAsYouGo`'s, asked after the listing instead of during it."""
    if suspicious is None:
        suspicious = [p for p, listing in listings.items() if isinstance(listing, frozenset)]
    around = SurroundingsAsYouGo(storage, (), suspicious=suspicious)
    storage.run_all(
        [c for p, answer in sorted(listings.items()) for c in around.follow(p, answer)], concurrency=concurrency
    )
    return around.surroundings()


class SurroundingsAsYouGo:
    """The :class:`Surroundings` :func:`dataset_neighbours` gathers, asked for while the prefixes are still being
    listed: :meth:`follow` is ``S3Storage.list_many``'s ``then``. As each prefix's answer arrives it names the
    requests that answer calls for (the dataset folder of an empty prefix; each parent folder, once, of a prefix
    that lacks one of ``keys``), and they take the listing window's free slots instead of a wave of their own after
    it. A prefix is suspicious when it lacks one of ``keys`` (``suspicious_prefixes``), or, when ``suspicious`` is
    given, when it is one of those. The same requests and the same answers as ``dataset_neighbours(storage,
    listings, suspicious=suspicious_prefixes(keys, listings))``::

        around = SurroundingsAsYouGo(storage, row_keys)
        listings = storage.list_many(prefixes, concurrency=32, then=around.follow)
        around.surroundings()                                        # -> Surroundings
    """

    def __init__(
        self, storage: S3Storage, keys: Iterable[str | None], *, suspicious: Iterable[str] | None = None
    ) -> None:
        self.storage = storage
        self.suspicious = None if suspicious is None else set(suspicious)
        self.expected: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            if key is not None:
                self.expected[metadata_folder(key)].append(key)
        self.neighbours: dict[str, bool | BaseException] = {}
        self.siblings: dict[str, frozenset[str] | BaseException] = {}
        self.asked: set[str] = set()

    def follow(self, prefix: str, answer: frozenset[str] | BaseException) -> list[Callable[[], object]]:
        """The requests the answer of ``prefix`` calls for; each keeps its answer, or its error, here."""
        listing = {prefix: answer}
        calls: list[Callable[[], object]] = []
        if guards.empty_prefixes(listing):
            calls.append(partial(self._holds_other, prefix))
        if self._is_suspicious(prefix, listing):
            for parent, _ in guards.folder_levels(prefix):
                if parent not in self.asked:
                    self.asked.add(parent)
                    calls.append(partial(self._folders, parent))
        return calls

    def _is_suspicious(self, prefix: str, listing: Mapping[str, frozenset[str] | BaseException]) -> bool:
        if self.suspicious is not None:
            return prefix in self.suspicious
        return bool(suspicious_prefixes(self.expected.get(prefix, ()), listing))

    def _holds_other(self, prefix: str) -> None:
        try:
            self.neighbours[prefix] = self.storage.holds_other_than(guards.dataset_folder(prefix), prefix)
        except StorageError as exc:
            self.neighbours[prefix] = exc

    def _folders(self, parent: str) -> None:
        try:
            self.siblings[parent] = self.storage.list_folders(parent)
        except StorageError as exc:
            self.siblings[parent] = exc

    def surroundings(self) -> Surroundings:
        return Surroundings(dict(sorted(self.neighbours.items())), dict(sorted(self.siblings.items())))


def folder_siblings(
    storage: S3Storage,
    prefixes: Iterable[str],
    *,
    concurrency: int,
    known: Mapping[str, frozenset[str] | BaseException] | None = None,
) -> dict[str, frozenset[str] | BaseException]:
    """The folders in each parent folder of these ``Annotations/`` prefixes, from the dataset folder down (one LIST
    with a delimiter per parent, shared by the prefixes under it); the parents in ``known`` are not listed again."""
    known = known or {}
    parents = {parent for prefix in prefixes for parent, _ in guards.folder_levels(prefix)} - set(known)
    return {**known, **storage.folders_many(parents, concurrency=concurrency)}


def wide_folder(prefix: str) -> str:
    """The folder one level below the dataset folder on the way to an ``Annotations/`` prefix: its run folder in the
    portal's layout (the prefix itself in another layout). One LIST of it without a delimiter holds the prefix's
    listing and every folder level below it.

    >>> wide_folder("10001/TS_1/Reconstructions/VoxelSpacing1.000/Annotations/")
    '10001/TS_1/'
    >>> wide_folder("b/Annotations/")
    'b/Annotations/'
    """
    top = guards.dataset_folder(prefix)
    return top + prefix[len(top) :].split("/", 1)[0] + "/"


def folders_in(parent: str, keys: Iterable[str]) -> frozenset[str]:
    """The folders directly in ``parent`` that ``keys`` (a complete listing of ``parent`` or of a folder above it)
    show: what a LIST of ``parent`` with the delimiter ``/`` names as its common prefixes.

    >>> sorted(folders_in("a/", ["a/x.json", "a/b/1", "a/b/2", "a/c/d/e", "z/b/1"]))
    ['a/b/', 'a/c/']
    """
    return frozenset(
        parent + rest.split("/", 1)[0] + "/"
        for key in keys
        if key.startswith(parent) and "/" in (rest := key[len(parent) :])
    )


def split_wide(
    prefixes: Iterable[str], wide: Mapping[str, frozenset[str] | BaseException]
) -> tuple[dict[str, frozenset[str] | BaseException], dict[str, frozenset[str] | BaseException]]:
    """From the listings of the prefixes' wide folders (:func:`wide_folder` -> its keys, or the error): each
    prefix's own listing, and the folders of each parent folder from the wide folder down to the prefix (what
    ``folder_siblings`` would list with a delimiter). A wide folder not listed leaves its prefixes out; an error is
    the answer of every prefix and parent under it (unknown, never "nothing there").

    >>> p = "1/T/Reconstructions/VoxelSpacing1.000/Annotations/"
    >>> keys = frozenset({p + "1/a-1.json", "1/T/reconstructions/x", "1/T/run.json"})
    >>> listings, folders = split_wide([p], {"1/T/": keys})
    >>> listings == {p: frozenset({p + "1/a-1.json"})}, sorted(folders)
    (True, ['1/T/', '1/T/Reconstructions/', '1/T/Reconstructions/VoxelSpacing1.000/'])
    >>> sorted(folders["1/T/"])
    ['1/T/Reconstructions/', '1/T/reconstructions/']
    """
    listings: dict[str, frozenset[str] | BaseException] = {}
    folders: dict[str, frozenset[str] | BaseException] = {}
    for prefix in sorted(set(prefixes)):
        top = wide_folder(prefix)
        got = wide.get(top)
        if got is None:
            continue
        parents = [parent for parent, _ in guards.folder_levels(prefix) if parent.startswith(top)]
        if isinstance(got, BaseException):
            listings[prefix] = got
            folders.update(dict.fromkeys(parents, got))
            continue
        listings[prefix] = frozenset(k for k in got if k.startswith(prefix))
        for parent in parents:
            if parent not in folders:
                folders[parent] = folders_in(parent, got)
    return listings, folders
