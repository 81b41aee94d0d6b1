"""What ``cleanup-stale-annotations`` does: survey the scope (no writes), then hand each batch of stale rows,
read afresh, to the one deletion flow."""

from __future__ import annotations

import logging
from collections import defaultdict

from annotation_reconciler.errors import CleanupError
from annotation_reconciler.ledger import Source, quarantines
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.rules.lifecycle import Candidate, Decision, Verdict
from annotation_reconciler.rules.listings import prefixes_to_list, suspicious_prefixes
from annotation_reconciler.rules.ordering import utcnow
from annotation_reconciler.rules.plural import count
from annotation_reconciler.service import survey
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.deletions import Policy, delete_stale, hold
from annotation_reconciler.service.results import CleanupResult, Stale

log = logging.getLogger("annotation_reconciler.cleanup")

BATCH_SIZE = 500
REASON = "metadata not found in S3 (cleanup-stale-annotations)"


def survey_scope(ctx: Context, report: CleanupResult, max_fraction: float | None) -> None:
    """Fill the report's stale and unknown annotations; raise CleanupError on any S3 error."""
    found = survey.survey(ctx, report.scope, max_fraction=max_fraction)
    if found.errors:
        first = found.errors[0]
        raise CleanupError(
            f"S3 error, nothing deleted: {first.operation} s3://{first.bucket}/{first.key} failed "
            f"({first.code or type(first.cause).__name__}: {first.cause})"
            + (f"; and {count(len(found.errors) - 1, 'more prefix', 'more prefixes')}" if len(found.errors) > 1 else "")
        )
    report.annotations = found.annotations
    report.prefixes_listed = found.prefixes_listed
    stale = []
    for d in found.decisions.items:
        if d.verdict in (Verdict.STALE, Verdict.HELD) and d.key is not None:
            stale.append(Stale(d.candidate.ref, d.key, d.verdict is Verdict.HELD, d.reason))
        elif d.verdict in (Verdict.UNKNOWN, Verdict.MOVED):  # a move is no deletion: left in place, reported
            report.unknown.append(d.as_unknown())
    report.stale = sorted(stale, key=lambda s: (s.ref.run_id or 0, s.ref.id))
    report.unknown.sort(key=lambda u: u.ref.id)


def delete_stale_annotations(
    ctx: Context,
    report: CleanupResult,
    *,
    approved_by: str | None,
    max_fraction: float | None,
) -> None:
    """List the stale keys' prefixes again, then hand each batch, read afresh in its own transaction, to
    the one deletion flow: whatever came back is kept, what is still absent is deleted (held rows only
    when an operator, ``approved_by``, approved them: their ledger rows name the operator; otherwise they
    are recorded as held in the ledger)."""
    approve_held = approved_by is not None
    targets = list(report.stale)
    listings, _ = survey.list_prefixes(ctx, prefixes_to_list(s.key for s in targets))
    failed = [p for p, answer in listings.items() if isinstance(answer, BaseException)]
    if failed:
        raise CleanupError(
            f"S3 error at the re-check, nothing deleted: {count(len(failed), 'prefix', 'prefixes')} could not be "
            "listed, "
            f"e.g. s3://{report.bucket}/{failed[0]}: {listings[failed[0]]}"
        )
    # an empty prefix in a healthy dataset is ordinary; a twin of a stale key's folders makes it unknown
    neighbours = survey.neighbours(ctx, listings, suspicious_prefixes([s.key for s in targets], listings))
    totals: dict[str, int] = defaultdict(int)
    policy = Policy(max_fraction)
    # The survey judged the whole scope at once: a row it held stays held unless the operator approved it
    # (judged again batch by batch, each batch would pass the guard that all of them together failed).
    waiting = [s for s in targets if s.held and not approve_held]
    targets = [s for s in targets if not (s.held and not approve_held)]
    if waiting:
        with ctx.engine.begin() as conn:
            report.held += hold(
                conn,
                [Decision(Candidate(s.ref), Verdict.HELD, s.key, s.reason) for s in waiting],
                policy,
                source=Source.CLI,
                now=utcnow(),
            )
    for start in range(0, len(targets), BATCH_SIZE):
        batch = targets[start : start + BATCH_SIZE]
        approved = {s.ref.id for s in batch if s.held and approve_held}
        now = utcnow()
        with ctx.engine.begin() as conn:
            current = annotation_rows.annotations_by_ids(conn, [s.ref.id for s in batch])
            candidates = [Candidate(r, approved=r.id in approved) for r in (current[i] for i in sorted(current))]
            outcome = delete_stale(
                conn,
                candidates,
                listings,
                ctx.layout,
                policy,
                source=Source.CLI,
                reason=REASON,
                now=now,
                neighbours=neighbours,
            )
            if approved_by is not None:
                quarantines.record_approval(conn, sorted(approved & set(outcome.deleted)), now=now, by=approved_by)
        for table, rows in outcome.rows_deleted.items():
            totals[table] += rows
        by_id = {s.ref.id: s for s in batch}
        for annotation_id in outcome.deleted:
            item = by_id[annotation_id]
            log.info("deleted annotation %d (run %s): %s", annotation_id, item.ref.run_id, item.ref.stored_path)
        present = [d.candidate.annotation_id for d in outcome.decisions.of(Verdict.RELEASE)]
        for annotation_id in present:
            log.warning("annotation %d kept: its metadata is back in S3", annotation_id)
        report.released += present
        report.deleted += outcome.deleted
        report.held += outcome.held
        report.unknown += outcome.unknown
    report.rows_deleted = dict(totals)
