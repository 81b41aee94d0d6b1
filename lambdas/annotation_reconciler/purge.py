"""The purge: rows past their grace period are claimed, re-checked in S3 and deleted through the one flow."""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from annotation_reconciler import lifecycle, ordering
from annotation_reconciler.core import SAFETY_MARGIN_S
from annotation_reconciler.deletions import Policy, capped, delete_stale, ids_of
from annotation_reconciler.errors import ConcurrentChangeError
from annotation_reconciler.evidence import Surroundings, folder_siblings
from annotation_reconciler.ledger import event_order, purge_claims
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.lifecycle import Candidate, Verdict
from annotation_reconciler.moves import find_moves
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.results import PurgeResult
from annotation_reconciler.survey import SurveyMixin

log = logging.getLogger(__name__)

#: How long a purge's claim on due rows lasts if the purge dies before settling them.
CLAIM_LEASE = datetime.timedelta(minutes=20)


class PurgeMixin(SurveyMixin):
    """Purge the quarantined rows whose grace period is over."""

    def purge(self, *, remaining_seconds: Callable[[], float] | None = None, max_batches: int = 1000) -> PurgeResult:
        """Purge quarantined annotations past their grace period, one batch at a time: claim the due rows
        with a lease and commit; LIST their prefixes holding no lock; then, in one transaction, re-lock
        the rows still due, read each annotation's current row and let the one decision carry them out."""
        result = PurgeResult(dry_run=self.settings.dry_run)
        seen: list[int] = []
        for _ in range(max_batches):
            if remaining_seconds is not None and remaining_seconds() < SAFETY_MARGIN_S:
                break
            now = self.clock()
            with self.engine.begin() as conn:
                claims = purge_claims.claim_due(
                    conn, now=now, limit=self.purge_batch_size, lease=CLAIM_LEASE, exclude=seen
                )
            if not claims:
                break
            seen.extend(c.quarantine_id for c in claims)
            result.claimed += len(claims)
            keys = [c.metadata_key for c in claims if c.metadata_key]
            listed = ordering.Stamp(self.clock())  # the listing is evidence only for what happened before it
            listings, _ = self.list_prefixes(lifecycle.prefixes_to_list(keys))
            suspicious = lifecycle.suspicious_prefixes(keys, listings)  # a twin of their folders: unknown
            around = Surroundings(
                siblings=folder_siblings(self.storage, suspicious, concurrency=self.settings.s3_concurrency)
            )
            with self.engine.connect() as conn:  # a rename keeps the row: read its voxel spacing's untracked files
                suspects = [(c.annotation_id, c.metadata_key) for c in claims if c.metadata_key]
                concurrency = self.settings.s3_concurrency
                moved = find_moves(conn, self.storage, self.layout, suspects, listings, concurrency=concurrency)
            try:
                with self.engine.begin() as conn:
                    self._settle(conn, claims, listings, listed, result, now, around, moved)
            except ConcurrentChangeError as exc:
                log.warning("purge batch rolled back: %s", exc)
                result.errors.append(str(exc))
                self._end_claims(claims)
            except Exception:
                self._end_claims(claims)  # best effort: else the lease runs out by itself
                raise
        return result

    def _end_claims(self, claims: Sequence[purge_claims.Claim]) -> None:
        with contextlib.suppress(Exception), self.engine.begin() as conn:
            purge_claims.end_claims(conn, [c.quarantine_id for c in claims])

    def _settle(
        self,
        conn: Any,
        claims: Sequence[purge_claims.Claim],
        listings: Mapping[str, frozenset[str] | BaseException],
        listed: ordering.Stamp,
        result: PurgeResult,
        now: datetime.datetime,
        around: Surroundings,
        moved: Mapping[int, str | BaseException],
    ) -> None:
        locked = purge_claims.lock_claims(conn, claims)
        # A row an event stamped after the listing started (a re-upload removed again) is not judged on that
        # listing: it stays quarantined, and the next purge lists it afresh.
        rows = event_order.newest_rows(conn, [c.annotation_id for c in locked])
        later = {
            c.annotation_id
            for c in locked
            if (state := rows.get(c.annotation_id)) and state.stamp and ordering.newer(state.stamp, listed)
        }
        if later:
            log.info("purge leaves %s to the next purge: stamped after its listing", capped(sorted(later)))
        locked = [c for c in locked if c.annotation_id not in later]
        current = annotation_rows.annotations_by_ids(conn, [c.annotation_id for c in locked])
        candidates = []
        for claim in locked:
            row = current.get(claim.annotation_id)
            candidates.append(
                Candidate(
                    claim.annotation_id,
                    row.stored_path if row else None,
                    row.dataset_id if row else claim.dataset_id,
                    row.run_id if row else None,
                    quarantine_id=claim.quarantine_id,
                    quarantined_path=claim.s3_metadata_path,
                    quarantined_key=claim.metadata_key,
                    approved=claim.approved,
                )
            )
        policy = Policy(self.settings.max_purge_fraction, self.settings.dry_run, self.settings.grace_period)
        outcome = delete_stale(
            conn,
            candidates,
            listings,
            self.layout,
            policy,
            source=Source.EVENT,  # only for a row without a ledger row (none here): purged rows keep theirs
            reason="metadata absent after the grace period",
            now=now,
            neighbours=around,
            moved=moved,
        )
        purge_claims.end_claims(conn, [c.quarantine_id for c in claims])
        result.deleted += outcome.deleted
        result.would_delete += outcome.would_delete
        result.released += outcome.released
        result.held += outcome.held
        result.held_datasets.update(outcome.held_datasets)
        result.unknown += [d.candidate.annotation_id for d in outcome.unknown]
        result.moved += outcome.moved
        result.rows_deleted.update(outcome.rows_deleted)
        if outcome.would_delete:
            log.warning(
                "dry run: would purge %d annotations (%s)",
                len(outcome.would_delete),
                ids_of([d for d in outcome.decisions.of(Verdict.DELETE)]),
            )
