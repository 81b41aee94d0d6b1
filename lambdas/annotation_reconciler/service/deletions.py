"""The one deletion flow: every path that deletes annotations (the purge, the importer's sibling
cleanup, ``cleanup-stale-annotations``) hands its candidate rows and its listings to
:func:`delete_stale`, which asks :func:`lifecycle.decide` and carries out the answer in the
caller's transaction::

    with engine.begin() as conn:
        candidates = ...  # rows read in this transaction, with their current stored paths
        outcome = delete_stale(conn, candidates, listings, layout, policy, source=Source.IMPORTER, reason=...)
    outcome.deleted, outcome.held, outcome.unknown

No path keeps its own guard, re-check or deletion statement.
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection

from annotation_reconciler.ledger import Source, Status, exemptions, missing_files, quarantines
from annotation_reconciler.ledger.quarantines import Opening
from annotation_reconciler.portal.deletion import delete_annotations
from annotation_reconciler.rules import lifecycle
from annotation_reconciler.rules.lifecycle import AnnotationRef, Candidate, Decision, Verdict
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.plural import count
from annotation_reconciler.service.evidence import Surroundings
from annotation_reconciler.service.results import DeletionResult

log = logging.getLogger(__name__)
#: How many ids a log line names before it only counts the rest.
LOG_IDS = 20


@dataclass(frozen=True)
class Policy:
    """How a deletion path may act: the mass-deletion guard's fraction (None: no guard), dry run, and
    the grace period given to rows it holds or quarantines."""

    max_fraction: float | None
    dry_run: bool = False
    grace: datetime.timedelta = datetime.timedelta(0)
    #: rows this run has deleted already, per dataset: a run that deletes batch by batch (or voxel spacing by
    #: voxel spacing) is guarded as a whole, not each batch against what the earlier ones left
    deleted: dict[int | None, int] = field(default_factory=dict)


def ids_of(items: Sequence[Decision]) -> str:
    """A bounded list of annotation ids for a log line."""
    return capped([d.candidate.annotation_id for d in items])


def capped(ids: Sequence[int]) -> str:
    """The first :data:`LOG_IDS` ids and how many more: ``"1, 2, 3 and 40 more"``."""
    shown = ", ".join(str(i) for i in ids[:LOG_IDS])
    return shown + (f" and {len(ids) - LOG_IDS} more" if len(ids) > LOG_IDS else "")


def fresh_candidates(refs: Sequence[AnnotationRef]) -> list[Candidate]:
    """Rows judged by a path that has no ledger row for them (the importer, the scan)."""
    return [Candidate(r) for r in refs]


def gather_evidence(
    conn: Connection,
    candidates: Sequence[Candidate],
    listings: Mapping[str, frozenset[str] | BaseException],
    policy: Policy,
    neighbours: Surroundings | Mapping[str, bool | BaseException] | None = None,
    moved: Mapping[int, str | BaseException] | None = None,
) -> lifecycle.Evidence:
    """The listings (and what surrounds the suspicious ``Annotations/`` prefixes, when the caller looked: see
    ``evidence.dataset_neighbours``), the operator exemptions of the rows without a ledger row, and the dataset
    counts the guard needs (read in the caller's transaction). A caller that did not list the folders around a
    suspicious prefix gets its rows judged unknown: no twin was ruled out."""
    around = neighbours if isinstance(neighbours, Surroundings) else Surroundings(neighbours or {}, {})
    exempt = exemptions.exempted(conn, [c.annotation_id for c in candidates if c.quarantine_id is None])
    if policy.max_fraction is None:
        return lifecycle.Evidence(
            listings, neighbours=around.neighbours, exempt=exempt, siblings=around.siblings, moved=moved
        )
    datasets = sorted({c.ref.dataset_id for c in candidates if c.ref.dataset_id is not None})
    ids = [c.annotation_id for c in candidates]
    open_counts, totals = quarantines.guard_counts(conn, datasets, except_annotations=ids)
    for dataset, gone in policy.deleted.items():  # gone from both counts since: count them as this run's
        open_counts[dataset] = open_counts.get(dataset, 0) + gone
        totals[dataset] = totals.get(dataset, 0) + gone
    return lifecycle.Evidence(
        listings,
        open_counts,
        totals,
        neighbours=around.neighbours,
        exempt=exempt,
        siblings=around.siblings,
        moved=moved,
    )


def hold(
    conn: Connection, held: Sequence[Decision], policy: Policy, *, source: Source, now: datetime.datetime
) -> list[int]:
    """Record rows already judged held (by a survey of the whole scope) as held, without judging them again
    batch by batch; returns their annotation ids."""
    outcome = DeletionResult()
    _hold(conn, list(held), outcome, source, now, policy)
    return outcome.held


def delete_stale(
    conn: Connection,
    candidates: Sequence[Candidate],
    listings: Mapping[str, frozenset[str] | BaseException],
    layout: BucketLayout,
    policy: Policy,
    *,
    source: Source,
    reason: str,
    now: datetime.datetime,
    neighbours: Surroundings | Mapping[str, bool | BaseException] | None = None,
    moved: Mapping[int, str | BaseException] | None = None,
) -> DeletionResult:
    """Decide every candidate and carry out the decisions, in the caller's transaction.

    - delete: through the one deletion routine, only while the row's stored path is the judged one;
    - release: the candidate's open ledger row is closed with the decision's reason;
    - held: its ledger row is held (a new held row for a candidate without one);
    - unknown: nothing, logged with its reason.

    ``neighbours`` (see ``evidence.dataset_neighbours``) lets an empty prefix of a healthy dataset count as
    ordinary (without it such a fresh candidate is held), and rules out spelling twins of the folders of a
    suspicious prefix (without it a row absent from its listing is unknown).
    """
    evidence = gather_evidence(conn, candidates, listings, policy, neighbours, moved)
    decisions = lifecycle.decide(candidates, evidence, layout, max_fraction=policy.max_fraction)
    outcome = DeletionResult(decisions)
    _release(conn, decisions.of(Verdict.RELEASE), outcome, now)
    _hold(conn, decisions.of(Verdict.HELD), outcome, source, now, policy)
    for decision in decisions.of(Verdict.MOVED)[:LOG_IDS]:
        log.warning("annotation %d left in place: %s", decision.candidate.annotation_id, decision.reason)
    unknown = decisions.of(Verdict.UNKNOWN)
    if unknown:
        log.warning(
            "%s left in place, S3 or the configuration could not say (%s); first: %s",
            count(len(unknown), "annotation"),
            ids_of(unknown),
            unknown[0].reason,
        )
    doomed = decisions.of(Verdict.STALE)
    if policy.dry_run:
        outcome.would_delete = sorted(d.candidate.annotation_id for d in doomed)
        return outcome
    paths = {d.candidate.annotation_id: d.candidate.ref.stored_path for d in doomed if not d.candidate.gone}
    deleted = delete_annotations(
        conn,
        paths,
        source=source,
        reason=reason,
        metadata_keys={d.candidate.annotation_id: d.key for d in doomed},
        now=now,
    )
    outcome.deleted = deleted.deleted
    outcome.rows_deleted.update(deleted.rows_deleted)
    # the annotations are gone: their missing-file reports have nothing left to report
    missing_files.close_for_annotations(conn, deleted.deleted, now=now)
    gone = set(deleted.deleted)
    for d in doomed:
        if d.candidate.annotation_id in gone:
            dataset = d.candidate.ref.dataset_id
            policy.deleted[dataset] = policy.deleted.get(dataset, 0) + 1
    return outcome


def _release(conn: Connection, items: list[Decision], outcome: DeletionResult, now: datetime.datetime) -> None:
    with_rows = [(d.candidate.quarantine_id, d.reason) for d in items if d.candidate.quarantine_id is not None]
    outcome.released = quarantines.release_rows(conn, [(q, r) for q, r in with_rows if q is not None], now=now)
    changed = [d for d in items if d.key is None and not d.candidate.gone]
    for decision in changed[:LOG_IDS]:
        log.warning("annotation %d released: %s", decision.candidate.annotation_id, decision.reason)


def _hold(
    conn: Connection,
    items: list[Decision],
    outcome: DeletionResult,
    source: Source,
    now: datetime.datetime,
    policy: Policy,
) -> None:
    if not items:
        return
    quarantined = [(d.candidate.quarantine_id, d.reason) for d in items if d.candidate.quarantine_id is not None]
    quarantines.hold(conn, [(q, r) for q, r in quarantined if q is not None])
    fresh: dict[str, list[tuple[AnnotationRef, str | None]]] = defaultdict(list)
    for d in items:
        c = d.candidate
        if c.quarantine_id is None and not c.gone:
            fresh[d.reason].append((c.ref, d.key))
    if not policy.dry_run:
        for reason, refs in fresh.items():
            quarantines.quarantine(conn, refs, Opening(source, reason, now, policy.grace, Status.HELD))
    outcome.held = sorted(d.candidate.annotation_id for d in items)
    log.error("held %s for an operator (%s): %s", count(len(items), "annotation"), ids_of(items), items[0].reason)
