"""Pure decisions: what is stale, what is released, what may be purged and what must be held.

Nothing here does I/O. The service layer gathers rows and listings, asks these functions,
and carries out the answer::

    plan = plan_listing(refs, layout)                 # which prefixes to LIST
    survey = judge(plan, listings)                    # present / missing / unverifiable
    purge = plan_purge(due, presence, open_counts, totals, max_fraction=0.1)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from annotation_reconciler.paths import BucketLayout, KeyKind, classify_key


@dataclass(frozen=True, slots=True)
class AnnotationRef:
    """An annotation row as the reconciler sees it."""

    id: int
    stored_path: str
    dataset_id: int | None = None
    run_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unverifiable:
    """An annotation whose metadata cannot be checked; it is never treated as missing."""

    ref: AnnotationRef
    why: str


def metadata_folder(key: str) -> str:
    """The ``…/Annotations/`` prefix that holds a metadata key (its folder's parent)."""
    return key.rsplit("/", 2)[0] + "/"


def resolve(ref: AnnotationRef, layout: BucketLayout) -> str | Unverifiable:
    """The metadata key of an annotation, or why it cannot be verified."""
    key = layout.to_key(ref.stored_path)
    if key is None:
        return Unverifiable(ref, f"stored path {ref.stored_path!r} does not map to a key in bucket {layout.bucket}")
    if classify_key(key) is not KeyKind.METADATA:
        return Unverifiable(ref, f"{key!r} is not an annotation metadata key (Annotations/*/*[0-9].json)")
    return key


@dataclass
class ListingPlan:
    """The prefixes to LIST, each with the annotations whose metadata lives under it."""

    by_prefix: dict[str, list[tuple[AnnotationRef, str]]] = field(default_factory=dict)
    unverifiable: list[Unverifiable] = field(default_factory=list)


def plan_listing(refs: Iterable[AnnotationRef], layout: BucketLayout) -> ListingPlan:
    plan = ListingPlan()
    for ref in refs:
        resolved = resolve(ref, layout)
        if isinstance(resolved, Unverifiable):
            plan.unverifiable.append(resolved)
        else:
            plan.by_prefix.setdefault(metadata_folder(resolved), []).append((ref, resolved))
    return plan


@dataclass
class Survey:
    """The verdict on a set of annotations after listing their prefixes."""

    present: list[tuple[AnnotationRef, str]] = field(default_factory=list)
    missing: list[tuple[AnnotationRef, str]] = field(default_factory=list)
    unverifiable: list[Unverifiable] = field(default_factory=list)
    # Prefixes whose complete listing held no metadata at all while rows point into them: too
    # surprising to act on alone, so their annotations are held for an operator.
    empty_prefixes: dict[str, list[tuple[AnnotationRef, str]]] = field(default_factory=dict)

    @property
    def suspicious(self) -> list[tuple[AnnotationRef, str]]:
        return [item for items in self.empty_prefixes.values() for item in items]


def judge(plan: ListingPlan, listings: Mapping[str, frozenset[str] | BaseException]) -> Survey:
    """Compare each prefix's complete listing with the rows that point into it.

    A prefix with no listing, or whose listing failed, makes its annotations unverifiable.
    """
    survey = Survey(unverifiable=list(plan.unverifiable))
    for prefix, items in plan.by_prefix.items():
        listing = listings.get(prefix)
        if listing is None or isinstance(listing, BaseException):
            why = f"listing s3 prefix {prefix!r} failed: {listing}" if listing else f"{prefix!r} was not listed"
            survey.unverifiable.extend(Unverifiable(ref, why) for ref, _ in items)
            continue
        if not any(classify_key(k) is KeyKind.METADATA for k in listing):
            survey.empty_prefixes[prefix] = list(items)
            continue
        for ref, key in items:
            (survey.present if key in listing else survey.missing).append((ref, key))
    return survey


# --- purge -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueRow:
    """A quarantined annotation whose grace period is over."""

    quarantine_id: int
    annotation_id: int
    dataset_id: int | None
    key: str | None  # None: the stored path cannot be mapped (never purged)
    approved: bool = False


@dataclass
class PurgePlan:
    delete: list[DueRow] = field(default_factory=list)
    release: list[DueRow] = field(default_factory=list)
    hold: list[DueRow] = field(default_factory=list)
    unknown: list[DueRow] = field(default_factory=list)  # S3 could not say: stays quarantined
    held_datasets: dict[int | None, tuple[int, int]] = field(default_factory=dict)  # open, total


def plan_purge(
    due: Sequence[DueRow],
    presence: Mapping[str, bool | None],
    open_counts: Mapping[int | None, int],
    totals: Mapping[int | None, int],
    *,
    max_fraction: float,
) -> PurgePlan:
    """Decide the fate of due rows from a fresh look at S3.

    ``presence[key]`` is True (present: release), False (absent: may be deleted) or None/absent
    (unknown: keep waiting). The mass-deletion guard holds every unapproved deletion of a dataset
    whose open quarantine rows exceed ``max_fraction`` of its annotations.
    """
    plan = PurgePlan()
    candidates: dict[int | None, list[DueRow]] = defaultdict(list)
    for row in due:
        state = presence.get(row.key) if row.key is not None else None
        if state is True:
            plan.release.append(row)
        elif state is False:
            candidates[row.dataset_id].append(row)
        else:
            plan.unknown.append(row)
    for dataset_id, rows in candidates.items():
        total = totals.get(dataset_id, 0)
        open_rows = max(open_counts.get(dataset_id, 0), len(rows))
        over = total == 0 or open_rows > max_fraction * total
        for row in rows:
            if over and not row.approved:
                plan.hold.append(row)
                plan.held_datasets[dataset_id] = (open_rows, total)
            else:
                plan.delete.append(row)
    return plan


# --- events ------------------------------------------------------------------------------


@dataclass
class KeyStates:
    """The last known state of each key touched by a batch of events."""

    removed: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)


def last_states(changes: Iterable[tuple[str, bool, tuple[str, str]]]) -> KeyStates:
    """Collapse (key, removed?, order) triples to each key's last state within the batch.

    ``order`` is (event time ISO string, S3 sequencer hex padded) and sorts like the events.
    """
    latest: dict[str, tuple[tuple[str, str], bool]] = {}
    for key, removed, order in changes:
        seen = latest.get(key)
        if seen is None or order >= seen[0]:
            latest[key] = (order, removed)
    states = KeyStates()
    for key, (_, removed) in latest.items():
        (states.removed if removed else states.created).add(key)
    return states
