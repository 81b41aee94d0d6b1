"""The full reconciliation of one shard: quarantine what is stale, release what is back, hold what is suspicious."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from annotation_reconciler.ledger import (
    OPEN_STATUSES,
    Source,
    Status,
    event_batch,
    event_order,
    quarantines,
    resurrections,
    untracked,
)
from annotation_reconciler.ledger.quarantines import Opening
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules import lifecycle, ordering
from annotation_reconciler.rules.lifecycle import Verdict
from annotation_reconciler.rules.listings import listing_prefixes
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service import datafiles, survey
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.results import ScanResult


def _data_files(ctx: Context, annotation_ids: Sequence[int]) -> list[annotation_rows.FileRow]:
    with ctx.engine.connect() as conn:
        return annotation_rows.files_of(conn, annotation_ids)


def scan_shard(
    ctx: Context,
    scope: Scope,
    *,
    remaining_seconds: Callable[[], float] | None = None,
    resume_after: str | None = None,
    only_prefixes: Sequence[str] | None = None,
) -> ScanResult:
    """Full reconciliation of one shard: quarantine what is stale, release what is back, hold the
    annotations of prefixes that listed no metadata at all, record purged annotations found again.

    A listing is evidence only for what happened before it started: a row whose state is newer (an
    event applied while the scan ran) is neither released nor quarantined again by it."""
    # the shard's data files are read on a connection of their own while its listings are in flight
    files: list[Future[list[annotation_rows.FileRow]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="files") as reader:
        found = survey.survey(
            ctx,
            scope,
            remaining_seconds=remaining_seconds,
            resume_after=resume_after,
            only_prefixes=only_prefixes,
            on_rows=lambda refs: files.append(reader.submit(_data_files, ctx, [r.id for r in refs])),
        )
        file_rows = files[0].result() if files else []
    decisions = found.decisions
    stale = decisions.of(Verdict.STALE)
    present = [d for d in decisions.of(Verdict.RELEASE) if d.key is not None]
    moved = decisions.of(Verdict.MOVED)
    unknown = decisions.of(Verdict.UNKNOWN)
    result = ScanResult(
        scope=scope,
        annotations=found.annotations,
        prefixes_listed=found.prefixes_listed,
        present=len(present),
        stale=len(stale),
        unknown=[d.as_unknown() for d in unknown],
        errors=[str(e) for e in found.errors],
        over_page_limit=found.over_page_limit,
        failed_prefixes={p: str(e) for p, e in found.listings.items() if isinstance(e, BaseException)},
        listed_prefixes=[p for p, e in found.listings.items() if isinstance(e, frozenset)],
        resume_after=found.resume_after,
    )
    first = min(found.listed_at.values(), default=ctx.clock())

    def listed(d: lifecycle.Decision) -> ordering.Stamp:
        prefixes = listing_prefixes(d.key) if d.key else ()
        return ordering.Stamp(min((found.listed_at[p] for p in prefixes if p in found.listed_at), default=first))

    now = ctx.clock()
    with ctx.engine.begin() as conn:
        judged = stale + decisions.of(Verdict.HELD)
        seen = [(d.candidate.annotation_id, listed(d)) for d in present]
        # one read: the newest ledger row of every annotation this scan may write about (none for most)
        rows = event_order.newest_rows(conn, [d.candidate.annotation_id for d in judged] + [i for i, _ in seen])
        judged = [d for d in judged if ordering.may_quarantine(rows.get(d.candidate.annotation_id), listed(d))]
        stale = [d for d in judged if d.verdict is Verdict.STALE]
        result.quarantined = quarantines.quarantine(
            conn,
            [(d.candidate.ref, d.key) for d in stale],
            Opening(Source.SCAN, "metadata not found by full reconciliation", now, ctx.settings.grace_period),
            stamps=[listed(d) for d in stale],
        )
        held = [d for d in judged if d.verdict is Verdict.HELD]
        for reason in sorted({d.reason for d in held}):  # each with its own reason (one per held prefix)
            these = [d for d in held if d.reason == reason]
            result.held += quarantines.quarantine(
                conn,
                [(d.candidate.ref, d.key) for d in these],
                Opening(Source.SCAN, reason, now, ctx.settings.grace_period, Status.HELD),
                stamps=[listed(d) for d in these],
            )
        result.held.sort()
        # a row opened just now starts with its listing's stamp; one open before (or opened meanwhile by an
        # event) takes the newer of its own and the listing's
        opened = set(result.quarantined) | set(result.held)
        event_order.stamp_open_rows(
            conn,
            [
                (d.candidate.annotation_id, listed(d))
                for d in judged
                if d.candidate.annotation_id not in opened or _was_open(rows.get(d.candidate.annotation_id))
            ],
        )
        # only an annotation with a ledger row can have an open row to release or an exemption to lapse
        result.released = event_batch.release_and_lapse(
            conn,
            [(i, stamp) for i, stamp in seen if i in rows],
            now=now,
            resolution="metadata found by reconciliation",
        )
        judged_ids = {c.annotation_id for c in found.candidates}
        result.missing_files, result.restored_files = datafiles.record_files(
            conn, [f for f in file_rows if f.annotation_id in judged_ids], found.listings, ctx.layout, now
        )
        moves = {d.moved_to: d.candidate.annotation_id for d in moved if d.moved_to}
        untracked.record(conn, found.untracked, dataset_id=scope.dataset_id, now=now, moved=moves)
        result.untracked = sorted(k for keys in found.untracked.values() for k in keys)
        result.moved = sorted((d.candidate.annotation_id, d.moved_to) for d in moved if d.moved_to)
        result.resurrected = resurrections.record_resurrections(
            conn, found.found_again, now=now, since=now - ctx.settings.resurrection_window, found_by="scan"
        )
    return result


def _was_open(row: ordering.RowState | None) -> bool:
    return row is not None and row.status in OPEN_STATUSES
