"""The purge: rows past their grace period are claimed, re-checked in S3 and deleted through the one flow."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from annotation_reconciler.errors import ConcurrentChangeError
from annotation_reconciler.ledger import Source, event_order, purge_claims, resurrections, retention
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules import ordering
from annotation_reconciler.rules.lifecycle import AnnotationRef, Candidate, Verdict
from annotation_reconciler.rules.listings import prefixes_to_list, suspicious_prefixes
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.rules.plural import count
from annotation_reconciler.service import survey
from annotation_reconciler.service.context import SAFETY_MARGIN_S, Context
from annotation_reconciler.service.deletions import Policy, capped, delete_stale, ids_of
from annotation_reconciler.service.evidence import Surroundings, folder_siblings
from annotation_reconciler.service.moves import find_moves
from annotation_reconciler.service.results import PurgeResult

log = logging.getLogger(__name__)

#: How long a purge's claim on due rows lasts if the purge dies before settling them.
CLAIM_LEASE = datetime.timedelta(minutes=20)


@dataclass(frozen=True)
class Batch:
    """One batch of claimed rows (claimed at ``now``) and what S3 said about their keys, gathered before the
    transaction that settles them: the complete listings (and when they started), the folders around the
    suspicious prefixes and the renames found."""

    claims: Sequence[purge_claims.Claim]
    now: datetime.datetime
    listings: Mapping[str, frozenset[str] | BaseException]
    listed: ordering.Stamp
    around: Surroundings
    moved: Mapping[int, str | BaseException]


def purge(
    ctx: Context,
    *,
    remaining_seconds: Callable[[], float] | None = None,
    max_batches: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> PurgeResult:
    """Purge quarantined annotations past their grace period, one batch at a time: claim the due rows
    with a lease and commit; LIST their prefixes holding no lock; then, in one transaction, re-lock
    the rows still due, read each annotation's current row and let the one decision carry them out.
    ``progress`` is told each batch's rows once they are settled (the CLI's progress bar)."""
    result = PurgeResult(dry_run=ctx.settings.dry_run)
    seen: list[int] = []
    for _ in range(max_batches):
        if remaining_seconds is not None and remaining_seconds() < SAFETY_MARGIN_S:
            break
        now = ctx.clock()
        with ctx.engine.begin() as conn:
            claims = purge_claims.claim_due(conn, now=now, limit=ctx.purge_batch_size, lease=CLAIM_LEASE, exclude=seen)
        if not claims:
            break
        seen.extend(c.quarantine_id for c in claims)
        result.claimed += len(claims)
        batch = _gather(ctx, claims, now)
        try:
            _settle_or_end(ctx, batch, result)
        except Exception as exc:
            # One row the portal will not let go of (a foreign key from a table the reconciler does not
            # know, a trigger, a missing grant) must not stop the others: each row is settled alone.
            log.warning("purge batch failed (%s); settling its %s one by one", exc, count(len(claims), "row"))
            _settle_each(ctx, batch, result)
        if progress is not None:
            progress(len(claims))
    _close_residue(ctx, result)
    return result


def _gather(ctx: Context, claims: Sequence[purge_claims.Claim], now: datetime.datetime) -> Batch:
    """LIST the claims' prefixes (holding no lock) and look around the suspicious ones and for renames."""
    keys = [c.metadata_key for c in claims if c.metadata_key]
    listed = ordering.Stamp(ctx.clock())  # the listing is evidence only for what happened before it
    # Due rows were quarantined because their key was absent, so nearly every prefix needs the twin check:
    # one LIST of each run folder (no delimiter) holds the prefixes' listings and the run's folder levels;
    # only the dataset folders are left for a LIST with a delimiter.
    listings, below = survey.list_wide(ctx, prefixes_to_list(keys))
    suspicious = suspicious_prefixes(keys, listings)  # a twin of their folders: unknown
    siblings = folder_siblings(ctx.storage, suspicious, concurrency=ctx.settings.s3_concurrency, known=below)
    with ctx.engine.connect() as conn:  # a rename keeps the row: read its voxel spacing's untracked files
        suspects = [(c.annotation_id, c.metadata_key) for c in claims if c.metadata_key]
        moved = find_moves(conn, ctx.storage, ctx.layout, suspects, listings, concurrency=ctx.settings.s3_concurrency)
    return Batch(claims, now, listings, listed, Surroundings(siblings=siblings), moved)


def _close_residue(ctx: Context, result: PurgeResult) -> None:
    """What the period leaves behind: resurrections whose annotation was ingested again are closed, and
    closed history older than RECONCILER_LEDGER_RETENTION_DAYS is pruned. A failure here is logged and
    counted, never the end of the purge (the next one tries again)."""
    try:
        with ctx.engine.begin() as conn:
            now = ctx.clock()
            result.resurrections_closed = close_reingested(conn, ctx.layout, now=now)
            result.pruned = retention.prune(conn, now=now, retention=ctx.settings.ledger_retention)
    except Exception as exc:
        log.exception("closing the ledger's residue failed; the next purge tries again")
        result.errors.append(f"residue: {type(exc).__name__}: {exc}")
    if result.pruned:
        log.info("pruned closed ledger history: %s", result.pruned)


def _settle_or_end(ctx: Context, batch: Batch, result: PurgeResult) -> None:
    """Settle the claims in one transaction; when a concurrent change rolls it back, end the claims (the next purge
    takes the rows again at once). Any other error is raised."""
    try:
        with ctx.engine.begin() as conn:
            _settle(ctx, conn, batch, result)
    except ConcurrentChangeError as exc:
        log.warning("purge batch rolled back: %s", exc)
        result.errors.append(str(exc))
        _end_claims(ctx, batch.claims)


def _settle_each(ctx: Context, batch: Batch, result: PurgeResult) -> None:
    """Settle each claim in its own transaction, on the batch's evidence; a row that still fails is marked
    with its error (it waits, shown by ``status``, counted by PurgeRowsFailed) and the purge goes on. When
    not even the mark can be written (the database is gone), the error is raised."""
    for claim in batch.claims:
        try:
            _settle_or_end(ctx, dataclasses.replace(batch, claims=[claim]), result)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("purge could not settle annotation %d: %s", claim.annotation_id, error)
            try:
                with ctx.engine.begin() as conn:
                    purge_claims.mark_failed(conn, claim.quarantine_id, error=error, now=batch.now)
            except Exception:
                _end_claims(ctx, [claim])  # best effort: else the lease runs out by itself
                raise
            result.failed.append(claim.annotation_id)


def _end_claims(ctx: Context, claims: Sequence[purge_claims.Claim]) -> None:
    with contextlib.suppress(Exception), ctx.engine.begin() as conn:
        purge_claims.end_claims(conn, [c.quarantine_id for c in claims], settled=False)


def _settle(ctx: Context, conn: Any, batch: Batch, result: PurgeResult) -> None:
    locked = purge_claims.lock_claims(conn, batch.claims)
    # A row an event stamped not certainly before the listing started (a re-upload removed again, within the
    # second of an EventBridge time) is not judged on that listing: it stays quarantined, and the next purge
    # lists it afresh.
    rows = event_order.newest_rows(conn, [c.annotation_id for c in locked])
    later = {
        c.annotation_id
        for c in locked
        if (state := rows.get(c.annotation_id)) and state.stamp and not ordering.newer(batch.listed, state.stamp)
    }
    if later:
        log.info("purge leaves %s to the next purge: stamped after its listing", capped(sorted(later)))
    locked = [c for c in locked if c.annotation_id not in later]
    current = annotation_rows.annotations_by_ids(conn, [c.annotation_id for c in locked])
    candidates = [
        Candidate(
            current.get(claim.annotation_id)
            or AnnotationRef(claim.annotation_id, claim.s3_metadata_path, claim.dataset_id),  # as the ledger knew it
            quarantine_id=claim.quarantine_id,
            quarantined_path=claim.s3_metadata_path,
            quarantined_key=claim.metadata_key,
            approved=claim.approved,
            gone=claim.annotation_id not in current,
        )
        for claim in locked
    ]
    policy = Policy(ctx.settings.max_purge_fraction, ctx.settings.dry_run, ctx.settings.grace_period)
    outcome = delete_stale(
        conn,
        candidates,
        batch.listings,
        ctx.layout,
        policy,
        source=Source.EVENT,  # only for a row without a ledger row (none here): purged rows keep theirs
        reason="metadata absent after the grace period",
        now=batch.now,
        neighbours=batch.around,
        moved=batch.moved,
    )
    purge_claims.end_claims(conn, [c.quarantine_id for c in batch.claims])
    unknown = outcome.decisions.of(Verdict.UNKNOWN)
    purge_claims.mark_unknown(
        conn, [(d.candidate.quarantine_id, d.reason) for d in unknown if d.candidate.quarantine_id]
    )
    result.deleted += outcome.deleted
    result.would_delete += outcome.would_delete
    result.released += outcome.released
    result.held += outcome.held
    result.held_datasets.update(outcome.held_datasets)
    result.unknown += outcome.unknown
    result.moved += outcome.moved
    result.rows_deleted.update(outcome.rows_deleted)
    if outcome.would_delete:
        log.warning(
            "dry run: would purge %s (%s)",
            count(len(outcome.would_delete), "annotation"),
            ids_of([d for d in outcome.decisions.of(Verdict.STALE)]),
        )


def close_reingested(conn: Any, layout: BucketLayout, *, now: datetime.datetime) -> int:
    """Close the open resurrections whose metadata key is some annotation's stored path again (an ``ingest``
    brought it back, as ``status`` told the operator to); returns how many closed."""
    found = resurrections.open_keys(conn)
    if not found:
        return 0
    forms = {form: rid for rid, key in found for form in layout.stored_forms(key)}
    back = {
        forms[ref.stored_path]
        for ref in annotation_rows.annotations_by_paths(conn, sorted(forms))
        if ref.stored_path in forms
    }
    return resurrections.close(conn, sorted(back), now=now)
