"""What a complete listing of ``Annotations/`` prefixes says, key by key (pure): which prefixes a set of keys needs
listed, under which a key could be spelled, which listed prefixes lack a row's key, and which metadata keys no row
points to. ``lifecycle.decide`` and every path that lists read them::

    >>> prefixes_to_list(["1/TS/Reconstructions/VoxelSpacing1.000/Annotations/100/a-1.0.json"])
    ['1/TS/Reconstructions/VoxelSpacing1.000/Annotations/']

"Is this key listed, in any spelling?" has one answer, :meth:`Listings.presence`: LISTED, TWIN (a listed key
differs from it only in spelling), ABSENT (proven), or NOT_LISTED (a prefix that could hold it was not listed
completely)::

    >>> vs = "1/TS/Reconstructions/VoxelSpacing1.000/Annotations/"
    >>> listings = Listings({vs: frozenset({vs + "100/A-1.0.json"})})
    >>> [listings.presence(vs + name).seen.name for name in ("100/A-1.0.json", "100/a-1.0.json", "100/b-1.0.json")]
    ['LISTED', 'TWIN', 'ABSENT']

Two folds, two jobs: :func:`.spelling.spelling_form` (case, Unicode form and percent/plus-encoding undone) is the
one every presence question asks; :func:`canonical` (case and Unicode form only) is the fold stored in SQL
(``metadata_key_folded``, the quarantines' and the portal deletion's folded keys) and must stay as stored.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from annotation_reconciler.rules.paths import is_metadata_key
from annotation_reconciler.rules.spelling import spelling_form

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
    """The folded form of a key that SQL stores and compares (``resurrections.metadata_key_folded``, the
    quarantines' and the portal deletion's folded keys): two keys with one canonical form differ only in Unicode
    normalization (NFC, NFD, NFKC, NFKD) or letter case. Not for asking whether a key is listed: that is
    :meth:`Listings.presence` (:func:`.spelling.spelling_form`, which undoes percent/plus-encoding too).

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


# --- the one presence question ------------------------------------------------------------

#: What a LIST of one prefix answered: its complete keys, or the error that stopped it.
Answer = frozenset[str] | BaseException


class Seen(StrEnum):
    """What complete listings say of one key."""

    LISTED = "listed"  # the key itself is in the complete listing of its own prefix
    TWIN = "twin"  # not itself, but a listed key differs from it only in spelling: never absent
    ABSENT = "absent"  # every prefix that could hold it, in any spelling, was listed completely without it
    NOT_LISTED = "not listed"  # a prefix that could hold it was not listed, or its LIST failed


@dataclass(frozen=True, slots=True)
class Presence:
    """The answer of :meth:`Listings.presence` for ``key``.

    ``listed_as`` is the spelling the complete listings hold (the key itself, else its first twin in sorted order),
    also when another prefix was not listed; ``prefix`` and ``error`` name the first prefix without a complete
    listing (NOT_LISTED; ``error`` is None when it was never listed)."""

    key: str
    seen: Seen
    listed_as: str | None = None
    prefix: str | None = None
    error: BaseException | None = None

    @property
    def reason(self) -> str:
        """Why, in the words the decision's reasons use."""
        if self.seen is Seen.NOT_LISTED:
            if self.error is None:
                return f"{self.key!r} is not under a completely listed prefix ({self.prefix!r} was not listed)"
            return f"listing {self.prefix!r} failed: {self.error}"
        if self.seen is Seen.TWIN:
            return f"{self.key!r} differs only in spelling from the listed key {self.listed_as!r}"
        if self.seen is Seen.LISTED:
            return f"{self.key!r} is listed"
        return f"absent from the complete listing of {metadata_folder(self.key)!r}"


class Listings(Mapping[str, Answer]):
    """The listings one run made: prefix -> its complete keys, or the error that stopped its LIST (never "nothing
    there"). A mapping, so it travels where the plain dict did; each prefix's index of spelling forms is built the
    first time a key is asked about it, so every later question is a dictionary lookup, not a scan."""

    __slots__ = ("_answers", "_folded", "_forms", "_sorted")

    def __init__(self, answers: Mapping[str, Answer] | None = None) -> None:
        self._answers: dict[str, Answer] = dict(answers or {})
        self._forms: dict[str, dict[str, list[str]]] = {}
        self._sorted: dict[str, list[str]] = {}
        self._folded: dict[str, list[str]] = {}

    @classmethod
    def of(cls, answers: Mapping[str, Answer]) -> Listings:
        """``answers`` as Listings (itself when it already is, keeping its indexes)."""
        return answers if isinstance(answers, Listings) else cls(answers)

    def __getitem__(self, prefix: str) -> Answer:
        return self._answers[prefix]

    def __iter__(self) -> Iterator[str]:
        return iter(self._answers)

    def __len__(self) -> int:
        return len(self._answers)

    def answer(self, prefix: str) -> Answer | None:
        """What the LIST of ``prefix`` answered; None when it was not listed."""
        return self._answers.get(prefix)

    def complete(self, prefix: str) -> frozenset[str] | None:
        """The complete listing of ``prefix``; None when it failed or was not made."""
        answer = self._answers.get(prefix)
        return answer if isinstance(answer, frozenset) else None

    def _sorted_keys(self, prefix: str) -> list[str]:
        if prefix not in self._sorted:
            self._sorted[prefix] = sorted(self.complete(prefix) or ())
        return self._sorted[prefix]

    def _sorted_forms(self, prefix: str) -> list[str]:
        if prefix not in self._folded:
            self._folded[prefix] = sorted(self._forms_of(prefix))
        return self._folded[prefix]

    def _forms_of(self, prefix: str) -> dict[str, list[str]]:
        """Spelling form -> the keys of the complete listing of ``prefix`` spelled so (empty when not complete)."""
        forms = self._forms.get(prefix)
        if forms is None:
            forms = {}
            for key in self.complete(prefix) or ():
                forms.setdefault(spelling_form(key), []).append(key)
            self._forms[prefix] = forms
        return forms

    def presence(self, key: str, besides: Collection[str] = (), *, inside: bool = False) -> Presence:
        """Is ``key`` listed, in any spelling, under every prefix that could hold it (:func:`listing_prefixes`)?

        NOT_LISTED when one of them was not listed completely (even if another holds the key); else LISTED when its
        own listing holds the key, TWIN when a listing holds a key that differs from it only in spelling (one of
        ``besides`` aside), ABSENT otherwise. ``inside``: a key listed below ``key + "/"`` counts as ``key`` (a data
        file that is a zarr folder, whose chunks are the keys), found by bisection of a sorted index."""
        prefixes = listing_prefixes(key)
        own = metadata_folder(key)
        listed_as: str | None = None
        if key in (self.complete(own) or ()) or (
            inside and _first_below(self._sorted_keys(own), key) is not None  # a zarr folder: its keys
        ):
            listed_as = key
        else:
            form = spelling_form(key)
            twins = [other for p in prefixes for other in self._spelled(p, form, inside) if other not in besides]
            listed_as = min((other for other in twins if other != key), default=None)
        for prefix in prefixes:
            answer = self._answers.get(prefix)
            if not isinstance(answer, frozenset):
                return Presence(key, Seen.NOT_LISTED, listed_as, prefix, answer)
        if listed_as is None:
            return Presence(key, Seen.ABSENT)
        return Presence(key, Seen.LISTED if listed_as == key else Seen.TWIN, listed_as)

    def _spelled(self, prefix: str, form: str, inside: bool) -> list[str]:
        """The keys of the complete listing of ``prefix`` whose spelling form is ``form`` (``inside``: else those of
        the first form below ``form + "/"``)."""
        forms = self._forms_of(prefix)
        if form in forms or not inside:
            return forms.get(form, [])
        below = _first_below(self._sorted_forms(prefix), form)
        return forms[below] if below is not None else []


def _first_below(ordered: list[str], folder: str) -> str | None:
    """The first entry of a sorted list below ``folder + "/"``; None when there is none."""
    inside = folder + "/"
    i = bisect.bisect_left(ordered, inside)
    return ordered[i] if i < len(ordered) and ordered[i].startswith(inside) else None
