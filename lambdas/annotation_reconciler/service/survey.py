"""Listing a scope's prefixes and asking the one decision about its rows (no writes).

:func:`survey` is what the scan and the cleanup command act on; :func:`check_presence`
answers "is this key in S3 now?" from complete listings (the purge's and the inventory's re-check).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from annotation_reconciler.errors import PageLimitError, StorageError
from annotation_reconciler.ledger import resurrections
from annotation_reconciler.names import Env
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules import lifecycle
from annotation_reconciler.rules.lifecycle import AnnotationRef
from annotation_reconciler.rules.listings import (
    Listings,
    Seen,
    metadata_folder,
    prefixes_to_list,
    untracked_metadata,
)
from annotation_reconciler.rules.plural import count
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service.context import SAFETY_MARGIN_S, Context
from annotation_reconciler.service.deletions import LOG_IDS, Policy, fresh_candidates, gather_evidence
from annotation_reconciler.service.evidence import (
    Surroundings,
    SurroundingsAsYouGo,
    dataset_neighbours,
    folder_siblings,
    split_wide,
    wide_folder,
)
from annotation_reconciler.service.moves import find_moves
from annotation_reconciler.service.results import SurveyResult

log = logging.getLogger(__name__)


def list_prefixes(
    ctx: Context,
    prefixes: Iterable[str],
    *,
    remaining_seconds: Callable[[], float] | None = None,
    then: Callable[[str, Any], Iterable[Callable[[], object]]] | None = None,
) -> tuple[dict[str, frozenset[str] | BaseException], str | None]:
    """LIST each prefix completely (zarr chunks skipped), in sorted order; an S3 error is kept as
    that prefix's answer, never as "nothing there". Stops when the time budget runs low and then
    returns the last prefix listed (the next run resumes after it); else None. ``then``: the requests
    each answer calls for, in the same window (``S3Storage.list_many``)."""
    todo = sorted(set(prefixes))
    # RECONCILER_S3_CONCURRENCY listings in flight; the answers come back in sorted order, an error
    # stays an error at its own prefix, and no listing starts once the budget runs low (those left
    # out are always the last in sorted order, so the continuation resumes after the last listed).
    found = ctx.storage.list_many(
        todo,
        concurrency=ctx.settings.s3_concurrency,
        remaining_seconds=remaining_seconds,
        margin_s=SAFETY_MARGIN_S,
        max_pages=ctx.settings.scan_page_limit,
        then=then,
    )
    listings: dict[str, frozenset[str] | BaseException] = dict(found)
    if len(found) < len(todo):
        return listings, max(listings, default="")
    return listings, None


def list_wide(
    ctx: Context, prefixes: Iterable[str]
) -> tuple[dict[str, frozenset[str] | BaseException], dict[str, frozenset[str] | BaseException]]:
    """The listings of these ``Annotations/`` prefixes and the folders of every level below their run folders,
    from one LIST without a delimiter per run folder (``evidence.wide_folder``; its zarr chunks skipped): for a
    caller whose prefixes nearly all need the twin check (the purge). A run folder over
    RECONCILER_SCAN_PAGE_LIMIT pages has its prefixes listed one by one instead (their levels are then left to
    ``folder_siblings``)."""
    wanted = sorted(set(prefixes))
    wide, _ = list_prefixes(ctx, {wide_folder(p) for p in wanted})
    too_big = [p for p in wanted if isinstance(wide.get(wide_folder(p)), PageLimitError)]
    listings, below = split_wide([p for p in wanted if p not in set(too_big)], wide)
    if too_big:
        narrow, _ = list_prefixes(ctx, too_big)
        listings.update(narrow)
    return listings, below


def survey(
    ctx: Context,
    scope: Scope,
    *,
    remaining_seconds: Callable[[], float] | None = None,
    resume_after: str | None = None,
    max_fraction: float | None = None,
    only_prefixes: Sequence[str] | None = None,
    on_rows: Callable[[Sequence[AnnotationRef]], object] | None = None,
) -> SurveyResult:
    """Load the scope's annotations (one query), LIST the prefixes their keys need and ask
    :func:`lifecycle.decide` about each (with the mass-deletion guard when ``max_fraction`` is given).

    Decides nothing by itself: :func:`scan.scan_shard` and the cleanup CLI act on the verdicts.
    Stops listing, leaving ``resume_after``, when the time budget runs low; the rows whose
    prefixes fall after it are judged by the continuation. ``only_prefixes`` (a retry of the
    prefixes an earlier run could not list) limits the listing, and the rows judged, to those.
    """
    now = ctx.clock()
    with ctx.engine.connect() as conn:
        refs = annotation_rows.annotations_in_scope(conn, scope)
        purged = resurrections.purged_keys_in_scope(conn, scope, since=now - ctx.settings.resurrection_window)
    keys = {ref.id: ctx.layout.to_key(ref.stored_path) for ref in refs}

    def in_window(key: str | None, stopped: str | None = None) -> bool:
        """Whether a row (its key) is judged by this run: its prefix after ``resume_after``, among ``only_prefixes``,
        and up to the last prefix listed (``stopped``, once the listing is over)."""
        if key is None:  # unmappable: judged once, in the first window
            return resume_after is None and only_prefixes is None
        own = metadata_folder(key)
        if only_prefixes is not None and own not in set(only_prefixes):
            return False
        return (resume_after is None or own > resume_after) and (stopped is None or own <= stopped)

    if on_rows is not None:  # the caller's own reads of the rows it may judge go on while S3 answers
        on_rows([r for r in refs if in_window(keys[r.id])])
    result = SurveyResult(scope=scope, annotations=len(refs))
    wanted = prefixes_to_list([k for k in keys.values() if k] + purged)
    if resume_after is not None:
        wanted = [p for p in wanted if p > resume_after]
    if only_prefixes is not None:
        wanted = [p for p in wanted if p in set(only_prefixes)]
    started = ctx.clock()  # every listing below starts after this: it is evidence only for what came before
    # the evidence around suspicious and empty prefixes is asked for as their listings arrive
    around = SurroundingsAsYouGo(ctx.storage, keys.values())
    result.listings, stopped = list_prefixes(ctx, wanted, remaining_seconds=remaining_seconds, then=around.follow)
    result.listed_at = dict.fromkeys(result.listings, started)
    result.resume_after = stopped
    result.prefixes_listed = len(result.listings)
    result.errors = [
        e for e in result.listings.values() if isinstance(e, StorageError) and not isinstance(e, PageLimitError)
    ]
    result.over_page_limit = sorted(p for p, e in result.listings.items() if isinstance(e, PageLimitError))
    if result.over_page_limit:
        many = len(result.over_page_limit)
        log.warning(
            f"%s %s more LIST pages than {Env.SCAN_PAGE_LIMIT}=%d; their annotations are unknown: %s",
            count(many, "prefix", "prefixes"),
            "needs" if many == 1 else "need",
            ctx.settings.scan_page_limit,
            ", ".join(result.over_page_limit[:LOG_IDS]),
        )
    result.neighbours = around.surroundings()

    result.candidates = fresh_candidates([r for r in refs if in_window(keys[r.id], stopped)])
    result.purged_keys = [k for k in purged if in_window(k, stopped)]
    with ctx.engine.connect() as conn:
        suspects = [(c.annotation_id, k) for c in result.candidates if (k := keys[c.annotation_id])]
        # the scope's rows whose stored path is a standard form of their key: tracked, no lookup needed
        stored = [k for r in refs if (k := keys[r.id]) and r.stored_path in ctx.layout.stored_forms(k)]
        moved = find_moves(
            conn,
            ctx.storage,
            ctx.layout,
            suspects,
            result.listings,
            concurrency=ctx.settings.s3_concurrency,
            tracked=stored,
        )
        policy = Policy(max_fraction)
        evidence = gather_evidence(conn, result.candidates, result.listings, policy, result.neighbours, moved)
        result.untracked = _untracked(ctx, conn, result.listings, [k for k in keys.values() if k])
    result.decisions = lifecycle.decide(result.candidates, evidence, ctx.layout, max_fraction=max_fraction)
    return result


def _untracked(
    ctx: Context, conn: Any, listings: Mapping[str, frozenset[str] | BaseException], tracked: Sequence[str]
) -> dict[str, list[str]]:
    """The metadata keys of the complete listings that no row points to: not a key of the scope's rows, nor of
    any other row (one query over every stored form of the rest)."""
    found = untracked_metadata(listings, tracked)
    rest = sorted({k for keys in found.values() for k in keys})
    forms = [form for k in rest for form in ctx.layout.stored_forms(k)]
    elsewhere = {ctx.layout.to_key(r.stored_path) for r in annotation_rows.annotations_by_paths(conn, forms)}
    return {prefix: [k for k in keys if k not in elsewhere] for prefix, keys in found.items()}


def neighbours(
    ctx: Context, listings: Mapping[str, frozenset[str] | BaseException], suspicious: Iterable[str] | None = None
) -> Surroundings:
    """For each listed ``Annotations/`` prefix without metadata: does its dataset folder hold other objects?
    (One or two LISTs of one key each, only for those prefixes.) And the folders beside each folder of the
    ``suspicious`` prefixes (default: every one listed), from the dataset folder down (one LIST with a
    delimiter per level)."""
    return dataset_neighbours(ctx.storage, listings, concurrency=ctx.settings.s3_concurrency, suspicious=suspicious)


def check_presence(ctx: Context, keys: Iterable[str]) -> dict[str, bool | None]:
    """Is each key in S3 now? True/False, or None when S3 could not say.

    Answered from complete listings of the keys' ``Annotations/`` prefixes (one LIST answers every
    key under a prefix, and only a listing shows a key spelled differently): a key that differs
    from a listed one only in Unicode normalization, case or percent/plus-encoding is None, never False;
    so is a key one of whose folders, from the dataset folder down, has such a twin in S3 (one LIST with a
    delimiter per level, only for the absent keys).
    """
    wanted = set(keys)
    listed, _ = list_prefixes(ctx, prefixes_to_list(wanted))
    listings = Listings(listed)
    said = {Seen.LISTED: True, Seen.ABSENT: False}  # a twin or a prefix not listed: S3 could not say
    presence: dict[str, bool | None] = {key: said.get(listings.presence(key).seen) for key in wanted}
    absent = [k for k, present in presence.items() if present is False]
    if absent:
        siblings = folder_siblings(
            ctx.storage, {metadata_folder(k) for k in absent}, concurrency=ctx.settings.s3_concurrency
        )
        for key in absent:
            if lifecycle.twin_folder_reason(metadata_folder(key), siblings) is not None:
                presence[key] = None
    return presence
