"""Pure decisions: what is stale, what is released, what may be purged and what must be held.

Nothing here does I/O. Every path that deletes (the purge, the importer's sibling cleanup, the
cleanup CLI) and the scan that quarantines read their candidate rows, LIST the prefixes
:func:`listings.prefixes_to_list` names, and ask :func:`decide`; then they carry out its answer::

    listings = {p: frozenset(storage.list_keys(p)) for p in prefixes_to_list(keys)}
    decisions = decide(candidates, Evidence(listings, open_counts, totals), layout, max_fraction=0.1)
    decisions.of(Verdict.STALE)     # the rows that may go; RELEASE / UNKNOWN / HELD for the rest
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from annotation_reconciler.rules.guards import GUARD_FLOOR, dataset_folder, folder_levels, guard_allows
from annotation_reconciler.rules.listings import Listings, Seen, metadata_folder
from annotation_reconciler.rules.paths import BucketLayout, KeyKind, classify_key, is_metadata_key
from annotation_reconciler.rules.plural import count
from annotation_reconciler.rules.spelling import twin_folder


@dataclass(frozen=True, slots=True)
class AnnotationRef:
    """An annotation row as the reconciler sees it."""

    id: int
    stored_path: str
    dataset_id: int | None = None
    run_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unknown:
    """An annotation whose metadata cannot be checked; it is never treated as stale. Every result reports its
    unknown rows as these: the row as read, why, and the metadata key it was checked under (None: its stored
    path maps to no metadata key, or it was not resolved)."""

    ref: AnnotationRef
    why: str
    key: str | None = None


def resolve(ref: AnnotationRef, layout: BucketLayout) -> str | Unknown:
    """The metadata key of an annotation, or why it cannot be verified."""
    key = layout.to_key(ref.stored_path)
    if key is None:
        return Unknown(ref, f"stored path {ref.stored_path!r} does not map to a key in bucket {layout.bucket}")
    if classify_key(key) is not KeyKind.METADATA:
        return Unknown(ref, f"{key!r} is not an annotation metadata key (Annotations/*/*[0-9].json)")
    return key


class Verdict(StrEnum):
    """What may happen to one candidate row."""

    STALE = (
        "stale"  # its current key is absent from a complete listing: a deletion path deletes it, a scan quarantines it
    )
    RELEASE = "release"  # its key is present, or the row changed since it was quarantined: nothing goes
    UNKNOWN = "unknown"  # S3 or the configuration could not say: never acted on
    HELD = "held"  # stale but suspicious: waits for an operator's approval
    MOVED = "moved"  # its key is gone, another listed metadata file of its voxel spacing carries its natural key


@dataclass(frozen=True, slots=True)
class Candidate:
    """A row some path would like to delete, as read in the transaction that would delete it.

    ``ref`` is the row as read there: its *current* ``s3_metadata_path``, dataset and run. ``gone``: the row no
    longer exists, and ``ref`` holds only what its ledger row last knew (id, dataset, the quarantined path);
    such a candidate is released, never judged on that path. The ``quarantined_*`` fields come from its open
    ledger row, when it has one.
    """

    ref: AnnotationRef
    quarantine_id: int | None = None
    quarantined_path: str | None = None
    quarantined_key: str | None = None
    approved: bool = False
    gone: bool = False

    @property
    def annotation_id(self) -> int:
        return self.ref.id


@dataclass(frozen=True)
class Evidence:
    """What S3 and the database said: complete listings of ``Annotations/`` prefixes (or the error
    that stopped one), and for the mass-deletion guard the dataset counts.

    ``open_counts`` counts a dataset's open ledger rows *other than* the candidates' own.
    """

    listings: Mapping[str, frozenset[str] | BaseException]
    open_counts: Mapping[int | None, int] = field(default_factory=dict)
    totals: Mapping[int | None, int] = field(default_factory=dict)
    #: For an ``Annotations/`` prefix that listed no metadata: does its dataset folder still hold other
    #: objects (True), nothing else (False), or could S3 not say (the error)? See :func:`dataset_folder`.
    neighbours: Mapping[str, bool | BaseException] = field(default_factory=dict)
    #: Annotations an operator released, with the stored path they were released under (sticky release).
    exempt: Mapping[int, str] = field(default_factory=dict)
    #: For each parent folder between a dataset folder and a suspicious row's ``Annotations/`` prefix: the folders
    #: a LIST with a delimiter found in it (full prefixes), or the error. See :func:`suspicious_prefixes` and
    #: ``spelling.folder_levels``. None: the caller did not look (pure callers only; every path that deletes looks),
    #: and a row's folders are then judged by the listings alone.
    siblings: Mapping[str, frozenset[str] | BaseException] | None = None
    #: Rows whose key is gone while an untracked metadata file of their voxel spacing carries their natural key:
    #: annotation id -> that file's key, or the error that kept a candidate move unread (``moves.find_moves``).
    #: None: the caller did not look (a pure caller, or the importer, which upserts on the natural key itself).
    moved: Mapping[int, str | BaseException] | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    candidate: Candidate
    verdict: Verdict
    key: str | None
    reason: str
    moved_to: str | None = None  # MOVED: the key that carries the row's natural key now

    def as_unknown(self) -> Unknown:
        """The decision as the results report an unknown row (or a row left in place for its reason)."""
        return Unknown(self.candidate.ref, self.reason, self.key)


@dataclass
class Decisions:
    """Every candidate's decision, and the datasets the mass-deletion guard held (open, total)."""

    items: list[Decision] = field(default_factory=list)
    held_datasets: dict[int | None, tuple[int, int]] = field(default_factory=dict)

    def of(self, verdict: Verdict) -> list[Decision]:
        return [d for d in self.items if d.verdict is verdict]


def decide(
    candidates: Iterable[Candidate],
    evidence: Evidence,
    layout: BucketLayout,
    *,
    max_fraction: float | None,
    floor: int = GUARD_FLOOR,
) -> Decisions:
    """The one decision every deletion path asks: delete, release, unknown or held, with a reason each.

    The rules, in order:

    1. *Current row, exact key*: a quarantined row whose stored path changed since (or which is gone)
       is released; its old key's absence says nothing about it.
    2. *Configuration drift is unknown*: a quarantined row that today's settings resolve to another
       key than the one it was quarantined under is unknown (the reason names both).
    3. *Key under the listed prefix*: only a complete listing of the prefix holding the row's own key
       (and of the prefixes of its other Unicode spellings) can prove it absent; anything else is unknown.
    4. *Ambiguity is unknown*: a listed key that differs from the row's only in Unicode normalization,
       case or percent/plus-encoding makes it unknown, never missing; so does such a twin of any of its folders
       from the dataset folder down (``Evidence.siblings``), or a level of them that could not be listed.
    4b. *A move is no deletion*: a row whose key is gone while an untracked metadata file of its voxel spacing
       carries its natural key is moved (``Evidence.moved``), never deleted; one such file that could not be
       read makes it unknown.
    5. *Operator's release sticks*: a row newly found stale that an operator released under its
       current stored path is released again (``Evidence.exempt``), never quarantined.
    6. *Suspicious evidence is held, ordinary evidence flows*: a row newly found stale whose prefix lists
       no metadata at all is ordinary when its dataset folder still holds other objects (a retraction, a
       run removed: the guard below still counts them), held when the dataset folder holds nothing else
       (a dataset gone, or a prefix setting that matches nothing) or was not checked, unknown when S3
       could not say. When ``max_fraction`` is given, every unapproved
       deletion of a dataset that :func:`guard_allows` refuses is held. *The guard counts the dataset, not
       the verdicts*: every candidate that is not released counts as going, whatever its verdict in this
       run (a row S3 could not judge may be gone too: a vanished dataset whose listings half fail is a
       vanished dataset), on top of the dataset's other open rows (``Evidence.open_counts``).
    """
    result = Decisions()
    deletions: dict[int | None, list[Decision]] = defaultdict(list)
    going: Counter[int | None] = Counter()
    listings = Listings.of(evidence.listings)  # indexed once for every candidate
    for candidate in candidates:
        verdict, key, reason = _judge(candidate, evidence, listings, layout)
        moved_to = evidence.moved.get(candidate.annotation_id) if verdict is Verdict.MOVED and evidence.moved else None
        decision = Decision(candidate, verdict, key, reason, moved_to if isinstance(moved_to, str) else None)
        if verdict is not Verdict.RELEASE:
            going[candidate.ref.dataset_id] += 1
        if verdict is Verdict.STALE:
            deletions[candidate.ref.dataset_id].append(decision)
        else:
            result.items.append(decision)
    for dataset_id, items in deletions.items():
        total = evidence.totals.get(dataset_id, 0)
        opened = evidence.open_counts.get(dataset_id, 0) + going[dataset_id]
        over = max_fraction is not None and not guard_allows(opened, total, max_fraction, floor)
        for decision in items:
            if over and not decision.candidate.approved:
                why = f"mass-deletion guard: {opened} of {count(total, 'annotation')} of dataset {dataset_id} would go"
                result.items.append(Decision(decision.candidate, Verdict.HELD, decision.key, why))
                result.held_datasets[dataset_id] = (opened, total)
            else:
                result.items.append(decision)
    return result


def _judge(
    candidate: Candidate, evidence: Evidence, listings: Listings, layout: BucketLayout
) -> tuple[Verdict, str | None, str]:
    if candidate.gone:
        return Verdict.RELEASE, None, "the annotation row no longer exists"
    path = candidate.ref.stored_path
    quarantined = candidate.quarantine_id is not None
    if quarantined and path != candidate.quarantined_path:
        return (
            Verdict.RELEASE,
            None,
            f"stored path changed from {candidate.quarantined_path!r} to {path!r} since quarantine",
        )
    resolved = resolve(candidate.ref, layout)
    if not quarantined and evidence.exempt.get(candidate.annotation_id) == path:
        # exempt: never stale; but a listing that shows its key again is the news that ends the exemption
        if not isinstance(resolved, Unknown) and resolved in (listings.complete(metadata_folder(resolved)) or ()):
            return Verdict.RELEASE, resolved, "metadata present in S3 (an operator's release of it lapses)"
        return Verdict.RELEASE, None, "released by an operator: exempt until its metadata or stored path changes"
    if isinstance(resolved, Unknown):
        return Verdict.UNKNOWN, None, resolved.why
    key = resolved
    if quarantined and key != candidate.quarantined_key:
        return (
            Verdict.UNKNOWN,
            key,
            f"configuration drift: quarantined as {candidate.quarantined_key!r}, today's settings "
            f"resolve {path!r} to {key!r}",
        )
    presence = listings.presence(key)
    if presence.seen is Seen.LISTED:
        return Verdict.RELEASE, key, "metadata present in S3"
    if presence.seen is not Seen.ABSENT:  # not listed completely, or a twin spelled differently
        return Verdict.UNKNOWN, key, presence.reason
    own = metadata_folder(key)
    own_listing = listings.complete(own) or frozenset()
    twin = twin_folder_reason(own, evidence.siblings)
    if twin is not None:
        return Verdict.UNKNOWN, key, twin
    move = evidence.moved.get(candidate.annotation_id) if evidence.moved is not None else None
    if isinstance(move, BaseException):
        return Verdict.UNKNOWN, key, f"could not read the untracked metadata of {own!r}, one may be its move: {move}"
    if move is not None:
        return Verdict.MOVED, key, f"moved: {move!r} carries its natural key (its own {key!r} is gone)"
    if not quarantined and not candidate.approved and not any(is_metadata_key(k) for k in own_listing):
        return _judge_empty(key, own, evidence.neighbours.get(own))
    return Verdict.STALE, key, presence.reason


def twin_folder_reason(own: str, siblings: Mapping[str, frozenset[str] | BaseException] | None) -> str | None:
    """Why a folder of ``own``, from the dataset folder down, may be spelled apart from one in S3 (a twin beside
    it, or a level not listed); None when every level was listed without one."""
    if siblings is None:
        return None
    for parent, name in folder_levels(own):
        folders = siblings.get(parent)
        if folders is None:
            return f"the folders of {parent!r} were not listed: {name!r} may have a twin spelled differently"
        if isinstance(folders, BaseException):
            return f"listing the folders of {parent!r} failed: {folders}"
        twin = twin_folder(parent, name, folders)
        if twin is not None:
            return f"{parent + name!r} differs only in spelling from the folder {twin!r} in S3"
    return None


def _judge_empty(key: str, own: str, neighbours: bool | BaseException | None) -> tuple[Verdict, str | None, str]:
    """A fresh candidate whose ``Annotations/`` prefix listed no metadata at all."""
    folder = dataset_folder(own)
    if neighbours is True:
        return (
            Verdict.STALE,
            key,
            f"absent from the complete listing of {own!r}, which holds no metadata; ordinary: the dataset folder "
            f"{folder!r} still holds other objects",
        )
    if isinstance(neighbours, BaseException):
        return (
            Verdict.UNKNOWN,
            key,
            f"could not check whether the dataset folder {folder!r} holds other objects: {neighbours}",
        )
    if neighbours is False:
        return (
            Verdict.HELD,
            key,
            f"suspicious: the listing of {own!r} holds no annotation metadata and the dataset folder {folder!r} "
            "holds nothing else (a dataset gone, or a prefix setting that matches nothing)",
        )
    return Verdict.HELD, key, f"suspicious: the listing of {own!r} holds no annotation metadata at all"


# --- events ------------------------------------------------------------------------------
