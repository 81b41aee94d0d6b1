"""The service layer: one operation per method, each returning a result object.

Handlers and CLIs build a :class:`Reconciler` and call one method::

    reconciler = Reconciler(engine, S3Storage(client, bucket), settings)
    result = reconciler.apply_changes(parsed.changes)     # S3 events -> quarantine / release
    result = reconciler.scan_shard(Scope(dataset_id=10001))
    result = reconciler.purge()                            # grace over -> re-check S3 -> delete
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from annotation_reconciler import datafiles, event_changes, lifecycle, ordering
from annotation_reconciler.deletions import LOG_IDS, Policy, delete_stale, fresh_candidates, ids_of
from annotation_reconciler.errors import ConcurrentChangeError, InventoryError, PageLimitError, StorageError
from annotation_reconciler.event_changes import zarr_ancestors as zarr_ancestors  # moved there; kept importable
from annotation_reconciler.events import ChangeKind, ObjectChange
from annotation_reconciler.evidence import dataset_neighbours
from annotation_reconciler.ledger import event_order, exemptions, purge_claims, quarantines, resurrections
from annotation_reconciler.ledger.models import Source, Status
from annotation_reconciler.lifecycle import AnnotationRef, Candidate, Verdict
from annotation_reconciler.paths import BucketLayout, KeyKind, classify_key, is_safe_key
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.scope import Scope
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage, inventory

log = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
#: Seconds left in the Lambda budget below which a scan stops and hands over to the next run.
SAFETY_MARGIN_S = 30.0
#: How long a purge's claim on due rows lasts if the purge dies before settling them.
CLAIM_LEASE = datetime.timedelta(minutes=20)
#: The longest the events path waits for a row lock (a purge settling the row): then it fails and is retried.
EVENTS_LOCK_TIMEOUT = "2s"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class ChangeResult:
    """What a batch of object changes did."""

    seen: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    unmatched_keys: list[str] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    missing_files: int = 0
    restored_files: int = 0
    resurrected: list[tuple[int, str]] = field(default_factory=list)  # purged annotations whose key is back
    out_of_order: int = 0  # events older than what the annotation's ledger row has seen: nothing done


@dataclass
class SurveyResult:
    """The verdict on a scope's annotations after listing their prefixes."""

    scope: Scope
    annotations: int = 0
    prefixes_listed: int = 0
    candidates: list[Candidate] = field(default_factory=list)  # the rows judged (those of the listed window)
    listings: dict[str, frozenset[str] | BaseException] = field(default_factory=dict)
    decisions: lifecycle.Decisions = field(default_factory=lifecycle.Decisions)
    purged_keys: list[str] = field(default_factory=list)  # keys of recently purged annotations, looked for too
    errors: list[StorageError] = field(default_factory=list)
    over_page_limit: list[str] = field(default_factory=list)  # prefixes beyond RECONCILER_SCAN_PAGE_LIMIT
    neighbours: dict[str, bool | BaseException] = field(default_factory=dict)
    resume_after: str | None = None
    listed_at: dict[str, datetime.datetime] = field(default_factory=dict)  # no listing of the prefix started before

    @property
    def found_again(self) -> list[str]:
        """Keys of recently purged annotations that the listings hold, in any spelling."""
        return [k for k in self.purged_keys if _listed_in_any_spelling(self.listings, k)]


def _listed_in_any_spelling(listings: Mapping[str, frozenset[str] | BaseException], key: str) -> bool:
    spelling = lifecycle.canonical(key)
    for prefix in lifecycle.listing_prefixes(key):
        listing = listings.get(prefix)
        if isinstance(listing, frozenset) and any(lifecycle.canonical(k) == spelling for k in listing):
            return True
    return False


def _listed(listings: Mapping[str, frozenset[str] | BaseException], key: str) -> bool:
    listing = listings.get(lifecycle.metadata_folder(key))
    return isinstance(listing, frozenset) and key in listing


@dataclass
class ScanResult:
    """What a full reconciliation of one shard found and did."""

    scope: Scope
    annotations: int = 0
    prefixes_listed: int = 0
    present: int = 0
    missing: int = 0
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    unverifiable: list[lifecycle.Unverifiable] = field(default_factory=list)
    resurrected: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    over_page_limit: list[str] = field(default_factory=list)  # unknown: more LIST pages than the limit
    missing_files: int = 0  # data files newly recorded missing (complete listings only)
    restored_files: int = 0
    failed_prefixes: dict[str, str] = field(default_factory=dict)  # prefix -> the S3 error that kept it unlisted
    listed_prefixes: list[str] = field(default_factory=list)  # listed completely
    resume_after: str | None = None  # set when the time budget ran out: the next run starts after it

    @property
    def complete(self) -> bool:
        return self.resume_after is None


@dataclass
class InventoryScanResult:
    """What a reconciliation from an S3 Inventory report found and did."""

    manifest: str
    report_time: datetime.datetime
    annotations: int = 0
    inventory_metadata_keys: int = 0
    candidates: int = 0  # rows whose metadata the inventory lacks
    unconfirmed: int = 0  # candidates S3 could not confirm either way: nothing done
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    unverifiable: list[lifecycle.Unverifiable] = field(default_factory=list)


@dataclass
class PurgeResult:
    """What one purge did (or, in dry run, would have done)."""

    dry_run: bool
    claimed: int = 0
    purged: list[int] = field(default_factory=list)
    would_purge: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    held_datasets: dict[int | None, tuple[int, int]] = field(default_factory=dict)
    rows_deleted: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def _order(change: ObjectChange) -> tuple[str, str]:
    when = change.event_time.isoformat() if change.event_time else ""
    return when, (change.sequencer or "").rjust(32, "0")


def _ref(candidate: Candidate) -> AnnotationRef:
    return AnnotationRef(candidate.annotation_id, candidate.stored_path or "", candidate.dataset_id, candidate.run_id)


class Reconciler:
    """The reconciler's operations over one portal database and one bucket."""

    def __init__(
        self,
        engine: Engine,
        storage: S3Storage,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        purge_batch_size: int = 500,
    ) -> None:
        self.engine = engine
        self.storage = storage
        self.settings = settings
        self.layout = BucketLayout.from_prefix(settings.bucket, settings.s3_prefix)
        self.clock = clock
        self.purge_batch_size = purge_batch_size

    # --- events ------------------------------------------------------------------------

    def _accept(self, change: ObjectChange, result: ChangeResult) -> KeyKind | None:
        if change.bucket != self.layout.bucket:
            result.ignored["other_bucket"] += 1
            return None
        if not is_safe_key(change.key):
            result.ignored["unsafe_key"] += 1
            return None
        if not change.key.startswith(self.layout.root):
            result.ignored["outside_prefix"] += 1
            return None
        kind = classify_key(change.key)
        if kind is KeyKind.OTHER:
            result.ignored["other_kind"] += 1
            return None
        return kind

    def apply_changes(self, changes: Sequence[ObjectChange], *, rollback: bool = False) -> ChangeResult:
        """Quarantine the annotations of removed metadata keys and release those of re-created ones.

        The whole batch maps with one query; replays and duplicates change nothing, and so does an
        event older than what the annotation's ledger row has seen (see :mod:`ordering`). Row locks
        are waited for at most :data:`EVENTS_LOCK_TIMEOUT` (then the batch fails and is retried).
        With ``rollback`` nothing is kept: the batch fallback uses it to find the messages that fail.
        """
        result = ChangeResult(seen=len(changes))
        metadata: list[ObjectChange] = []
        data: list[tuple[str, bool, tuple[str, str]]] = []
        for change in changes:
            kind = self._accept(change, result)
            if kind is KeyKind.METADATA:
                metadata.append(change)
            elif kind is not None:
                data.append((change.key, change.kind is ChangeKind.REMOVED, _order(change)))
        now = self.clock()
        latest = ordering.latest_per_key(metadata, now)
        files = lifecycle.last_states(data)
        if not (latest or files.removed or files.created):
            return result
        with self.engine.connect() as conn, conn.begin() as tx:
            conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": EVENTS_LOCK_TIMEOUT})
            applied = event_changes.apply_metadata_changes(conn, self.layout, self.settings, latest, now)
            result.unmatched_keys, result.out_of_order = applied.unmatched_keys, applied.out_of_order
            result.quarantined, result.released = applied.quarantined, applied.released
            result.resurrected = applied.resurrected
            missing, restored = event_changes.apply_file_changes(conn, self.layout, files, now)
            result.missing_files, result.restored_files = missing, restored
            if rollback:
                tx.rollback()
        for annotation_id, key in result.resurrected:
            log.error("purged annotation %d has its metadata back in S3: %s", annotation_id, key)
        return result

    # --- full reconciliation -----------------------------------------------------------

    def list_prefixes(
        self,
        prefixes: Iterable[str],
        *,
        remaining_seconds: Callable[[], float] | None = None,
    ) -> tuple[dict[str, frozenset[str] | BaseException], str | None]:
        """LIST each prefix completely (zarr chunks skipped), in sorted order; an S3 error is kept as
        that prefix's answer, never as "nothing there". Stops when the time budget runs low and then
        returns the last prefix listed (the next run resumes after it); else None."""
        todo = sorted(set(prefixes))
        # RECONCILER_S3_CONCURRENCY listings in flight; the answers come back in sorted order, an error
        # stays an error at its own prefix, and no listing starts once the budget runs low (those left
        # out are always the last in sorted order, so the continuation resumes after the last listed).
        found = self.storage.list_many(
            todo,
            concurrency=self.settings.s3_concurrency,
            remaining_seconds=remaining_seconds,
            margin_s=SAFETY_MARGIN_S,
            max_pages=self.settings.scan_page_limit,
        )
        listings: dict[str, frozenset[str] | BaseException] = dict(found)
        if len(found) < len(todo):
            return listings, max(listings, default="")
        return listings, None

    def survey(
        self,
        scope: Scope,
        *,
        remaining_seconds: Callable[[], float] | None = None,
        resume_after: str | None = None,
        max_fraction: float | None = None,
        only_prefixes: Sequence[str] | None = None,
    ) -> SurveyResult:
        """Load the scope's annotations (one query), LIST the prefixes their keys need and ask
        :func:`lifecycle.decide` about each (with the mass-deletion guard when ``max_fraction`` is given).

        Decides nothing by itself: :meth:`scan_shard` and the cleanup CLI act on the verdicts.
        Stops listing, leaving ``resume_after``, when the time budget runs low; the rows whose
        prefixes fall after it are judged by the continuation. ``only_prefixes`` (a retry of the
        prefixes an earlier run could not list) limits the listing, and the rows judged, to those.
        """
        now = self.clock()
        with self.engine.connect() as conn:
            refs = annotation_rows.annotations_in_scope(conn, scope)
            purged = resurrections.purged_keys_in_scope(conn, scope, since=now - self.settings.resurrection_window)
        result = SurveyResult(scope=scope, annotations=len(refs))
        keys = {ref.id: self.layout.to_key(ref.stored_path) for ref in refs}
        wanted = lifecycle.prefixes_to_list([k for k in keys.values() if k] + purged)
        if resume_after is not None:
            wanted = [p for p in wanted if p > resume_after]
        if only_prefixes is not None:
            wanted = [p for p in wanted if p in set(only_prefixes)]
        started = self.clock()  # every listing below starts after this: it is evidence only for what came before
        result.listings, stopped = self.list_prefixes(wanted, remaining_seconds=remaining_seconds)
        result.listed_at = dict.fromkeys(result.listings, started)
        result.resume_after = stopped
        result.prefixes_listed = len(result.listings)
        result.errors = [
            e for e in result.listings.values() if isinstance(e, StorageError) and not isinstance(e, PageLimitError)
        ]
        result.over_page_limit = sorted(p for p, e in result.listings.items() if isinstance(e, PageLimitError))
        if result.over_page_limit:
            log.warning(
                "%d prefixes need more LIST pages than RECONCILER_SCAN_PAGE_LIMIT=%d; their annotations are "
                "unknown: %s",
                len(result.over_page_limit),
                self.settings.scan_page_limit,
                ", ".join(result.over_page_limit[:LOG_IDS]),
            )
        result.neighbours = self.neighbours(result.listings)

        def in_window(key: str | None) -> bool:
            if key is None:  # unmappable: judged once, in the first window
                return resume_after is None and only_prefixes is None
            own = lifecycle.metadata_folder(key)
            if only_prefixes is not None and own not in set(only_prefixes):
                return False
            return (resume_after is None or own > resume_after) and (stopped is None or own <= stopped)

        result.candidates = fresh_candidates([r for r in refs if in_window(keys[r.id])])
        result.purged_keys = [k for k in purged if in_window(k)]
        with self.engine.connect() as conn:
            evidence = self._evidence(conn, result.candidates, result.listings, max_fraction, result.neighbours)
        result.decisions = lifecycle.decide(result.candidates, evidence, self.layout, max_fraction=max_fraction)
        return result

    @staticmethod
    def _evidence(
        conn: Any,
        candidates: Sequence[Candidate],
        listings: Mapping[str, frozenset[str] | BaseException],
        max_fraction: float | None,
        neighbours: Mapping[str, bool | BaseException] | None = None,
    ) -> lifecycle.Evidence:
        from annotation_reconciler.deletions import gather_evidence

        return gather_evidence(conn, candidates, listings, Policy(max_fraction), neighbours)

    def neighbours(self, listings: Mapping[str, frozenset[str] | BaseException]) -> dict[str, bool | BaseException]:
        """For each listed ``Annotations/`` prefix without metadata: does its dataset folder hold other objects?
        (One or two LISTs of one key each, only for those prefixes.)"""
        return dataset_neighbours(self.storage, listings, concurrency=self.settings.s3_concurrency)

    def scan_shard(
        self,
        scope: Scope,
        *,
        remaining_seconds: Callable[[], float] | None = None,
        resume_after: str | None = None,
        only_prefixes: Sequence[str] | None = None,
    ) -> ScanResult:
        """Full reconciliation of one shard: quarantine what is missing, release what is back, hold the
        annotations of prefixes that listed no metadata at all, record purged annotations found again.

        A listing is evidence only for what happened before it started: a row whose state is newer (an
        event applied while the scan ran) is neither released nor quarantined again by it."""
        found = self.survey(
            scope, remaining_seconds=remaining_seconds, resume_after=resume_after, only_prefixes=only_prefixes
        )
        decisions = found.decisions
        missing = decisions.of(Verdict.DELETE)
        present = [d for d in decisions.of(Verdict.RELEASE) if d.key is not None]
        unknown = decisions.of(Verdict.UNKNOWN)
        result = ScanResult(
            scope=scope,
            annotations=found.annotations,
            prefixes_listed=found.prefixes_listed,
            present=len(present),
            missing=len(missing),
            unverifiable=[lifecycle.Unverifiable(_ref(d.candidate), d.reason) for d in unknown],
            errors=[str(e) for e in found.errors],
            over_page_limit=found.over_page_limit,
            failed_prefixes={p: str(e) for p, e in found.listings.items() if isinstance(e, BaseException)},
            listed_prefixes=[p for p, e in found.listings.items() if isinstance(e, frozenset)],
            resume_after=found.resume_after,
        )
        first = min(found.listed_at.values(), default=self.clock())

        def listed(d: lifecycle.Decision) -> ordering.Stamp:
            prefixes = lifecycle.listing_prefixes(d.key) if d.key else ()
            return ordering.Stamp(min((found.listed_at[p] for p in prefixes if p in found.listed_at), default=first))

        now = self.clock()
        with self.engine.begin() as conn:
            judged = missing + decisions.of(Verdict.HELD)
            rows = event_order.newest_rows(conn, [d.candidate.annotation_id for d in judged])
            judged = [d for d in judged if ordering.may_quarantine(rows.get(d.candidate.annotation_id), listed(d))]
            missing = [d for d in judged if d.verdict is Verdict.DELETE]
            result.quarantined = quarantines.quarantine(
                conn,
                [(_ref(d.candidate), d.key) for d in missing],
                source=Source.SCAN,
                reason="metadata not found by full reconciliation",
                now=now,
                grace=self.settings.grace_period,
            )
            held = [d for d in judged if d.verdict is Verdict.HELD]
            for reason in sorted({d.reason for d in held}):  # each with its own reason (one per held prefix)
                result.held += quarantines.quarantine(
                    conn,
                    [(_ref(d.candidate), d.key) for d in held if d.reason == reason],
                    source=Source.SCAN,
                    status=Status.HELD,
                    now=now,
                    reason=reason,
                    grace=self.settings.grace_period,
                )
            result.held.sort()
            event_order.stamp_open_rows(conn, [(d.candidate.annotation_id, listed(d)) for d in judged])
            seen = [(d.candidate.annotation_id, listed(d)) for d in present]
            result.released = event_order.release_older(
                conn, seen, now=now, resolution="metadata found by reconciliation"
            )
            event_order.lapse_exemptions(conn, seen, now=now, why="metadata found by reconciliation")
            result.missing_files, result.restored_files = datafiles.record_files(
                conn, [c.annotation_id for c in found.candidates], found.listings, self.layout, now
            )
            result.resurrected = resurrections.record_resurrections(
                conn, found.found_again, now=now, since=now - self.settings.resurrection_window, found_by="scan"
            )
        return result

    def scan_inventory(self, manifest_url: str, *, inventory_client: Any = None) -> InventoryScanResult:
        """Full reconciliation from an S3 Inventory report instead of LISTs.

        Annotations whose metadata the inventory lacks are only candidates (the report may be a
        day old): each is confirmed against S3 now, and only a confirmed absence is quarantined.
        Inventory presence never releases anything, since the object may be gone since.
        """
        client = inventory_client or self.storage.client
        location = inventory.find_manifest(client, manifest_url)
        manifest = inventory.read_manifest(client, location)
        if manifest.source_bucket != self.layout.bucket:
            raise InventoryError(
                f"{location.url} inventories bucket {manifest.source_bucket!r}, not {self.layout.bucket!r}"
            )
        inventory.check_fresh(manifest, now=self.clock(), max_age=self.settings.inventory_max_age)
        present = {k for k in inventory.iter_present_keys(client, manifest) if classify_key(k) is KeyKind.METADATA}
        with self.engine.connect() as conn:
            refs = annotation_rows.annotations_in_scope(conn, Scope())
        result = InventoryScanResult(
            manifest=location.url,
            report_time=manifest.created,
            annotations=len(refs),
            inventory_metadata_keys=len(present),
        )
        candidates: list[tuple[AnnotationRef, str]] = []
        for ref in refs:
            resolved = lifecycle.resolve(ref, self.layout)
            if isinstance(resolved, lifecycle.Unverifiable):
                result.unverifiable.append(resolved)
            elif resolved not in present:
                candidates.append((ref, resolved))
        result.candidates = len(candidates)
        presence = self.check_presence(key for _, key in candidates)
        missing = [(ref, key) for ref, key in candidates if presence.get(key) is False]
        result.unconfirmed = sum(1 for _, key in candidates if presence.get(key) is None)
        now = self.clock()
        with self.engine.begin() as conn:
            result.quarantined = quarantines.quarantine(
                conn,
                missing,
                source=Source.SCAN,
                now=now,
                grace=self.settings.grace_period,
                reason=f"missing from the S3 Inventory of {manifest.created:%Y-%m-%d %H:%M} and confirmed absent",
            )
            back = [ref.id for ref, key in candidates if presence.get(key) is True]
            result.released = quarantines.release(conn, back, now=now, resolution="metadata present (inventory check)")
        return result

    # --- purge -------------------------------------------------------------------------

    def check_presence(self, keys: Iterable[str]) -> dict[str, bool | None]:
        """Is each key in S3 now? True/False, or None when S3 could not say.

        Answered from complete listings of the keys' ``Annotations/`` prefixes (one LIST answers every
        key under a prefix, and only a listing shows a key spelled differently): a key that differs
        from a listed one only in Unicode normalization or case is None, never False.
        """
        wanted = set(keys)
        listings, _ = self.list_prefixes(lifecycle.prefixes_to_list(wanted))
        presence: dict[str, bool | None] = {}
        for key in wanted:
            answers = [listings.get(p) for p in lifecycle.listing_prefixes(key)]
            if not all(isinstance(a, frozenset) for a in answers):
                presence[key] = None
            elif _listed(listings, key):
                presence[key] = True
            else:
                spelling = lifecycle.canonical(key)
                twins = any(lifecycle.canonical(k) == spelling for a in answers if isinstance(a, frozenset) for k in a)
                presence[key] = None if twins else False
        return presence

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
            listings, _ = self.list_prefixes(lifecycle.prefixes_to_list(keys))
            try:
                with self.engine.begin() as conn:
                    self._settle(conn, claims, listings, result, now)
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
        result: PurgeResult,
        now: datetime.datetime,
    ) -> None:
        locked = purge_claims.lock_claims(conn, claims)
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
        )
        purge_claims.end_claims(conn, [c.quarantine_id for c in claims])
        result.purged += outcome.deleted
        result.would_purge += outcome.would_delete
        result.released += outcome.released
        result.held += outcome.held
        result.held_datasets.update(outcome.held_datasets)
        result.unknown += [d.candidate.annotation_id for d in outcome.unknown]
        result.rows_deleted.update(outcome.rows_deleted)
        if outcome.would_delete:
            log.warning(
                "dry run: would purge %d annotations (%s)",
                len(outcome.would_delete),
                ids_of([d for d in outcome.decisions.of(Verdict.DELETE)]),
            )

    # --- operators ---------------------------------------------------------------------

    def approve(self, dataset_id: int, *, by: str = "operator") -> int:
        """Let a held dataset's deletions proceed at the next purge (after a fresh S3 check)."""
        with self.engine.begin() as conn:
            return quarantines.approve_dataset(conn, dataset_id, now=self.clock(), by=by)

    def release(self, annotation_id: int, *, by: str = "operator") -> bool:
        """Release an annotation for good: exempt from a new quarantine until its metadata or stored path
        changes, or :meth:`clear_release`."""
        with self.engine.begin() as conn:
            return exemptions.release_by_operator(conn, annotation_id, now=self.clock(), by=by)

    def clear_release(self, annotation_id: int, *, by: str = "operator") -> int:
        with self.engine.begin() as conn:
            return exemptions.clear(conn, annotation_id, now=self.clock(), by=by)


# --- fan-out of the full reconciliation ------------------------------------------------


def plan_shards(engine: Engine, *, max_annotations: int = 5000) -> list[Scope]:
    """One shard per dataset, split into groups of runs when a dataset is larger than ``max_annotations``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT r.dataset_id, a.run_id, count(*) FROM annotation a JOIN run r ON r.id = a.run_id
                    GROUP BY r.dataset_id, a.run_id ORDER BY r.dataset_id, a.run_id""")
        ).all()
    per_dataset: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for dataset_id, run_id, count in rows:
        per_dataset[dataset_id].append((run_id, count))
    shards: list[Scope] = []
    for dataset_id, runs in per_dataset.items():
        if sum(c for _, c in runs) <= max_annotations:
            shards.append(Scope(dataset_id=dataset_id))
            continue
        group: list[int] = []
        size = 0
        for run_id, count in runs:
            if group and size + count > max_annotations:
                shards.append(Scope(dataset_id=dataset_id, run_ids=tuple(group)))
                group, size = [], 0
            group.append(run_id)
            size += count
        shards.append(Scope(dataset_id=dataset_id, run_ids=tuple(group)))
    return shards


def shard_message(scope: Scope, resume_after: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "scan_shard", "dataset_id": scope.dataset_id}
    if scope.run_ids is not None:
        body["run_ids"] = list(scope.run_ids)
    if resume_after is not None:
        body["resume_after"] = resume_after
    return body


def scope_from_message(body: Mapping[str, Any]) -> tuple[Scope, str | None]:
    """Read a shard message; raises ValueError naming what is wrong."""
    if body.get("type") != "scan_shard":
        raise ValueError(f"not a shard message (type={body.get('type')!r}); expected type 'scan_shard'")
    dataset_id = body.get("dataset_id")
    if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
        raise ValueError(f"shard message needs an integer dataset_id, got {dataset_id!r}")
    run_ids = body.get("run_ids")
    if run_ids is not None and (
        not isinstance(run_ids, list) or not all(isinstance(r, int) and not isinstance(r, bool) for r in run_ids)
    ):
        raise ValueError(f"shard message run_ids must be a list of integers, got {run_ids!r}")
    resume = body.get("resume_after")
    if resume is not None and not isinstance(resume, str):
        raise ValueError("shard message resume_after must be a string")
    return Scope(dataset_id=dataset_id, run_ids=tuple(run_ids) if run_ids is not None else None), resume
