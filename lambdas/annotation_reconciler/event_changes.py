"""What a batch of S3 object changes does to the ledger, inside the events path's transaction.

Metadata keys: a removal quarantines the key's annotations, a creation releases them, each only when the
event is newer than what the annotation's ledger row has seen (:mod:`ordering`). Data files: a removal
opens (or extends) a missing-file report naming the removed key; a creation takes its key off the reports,
which close when none of their keys is missing any more::

    latest = ordering.latest_per_key(changes, now)
    applied = apply_metadata_changes(conn, layout, settings, latest, now)
    missing, restored = apply_file_changes(conn, layout, ordering.last_states(data_changes, now), now)
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from annotation_reconciler import ordering
from annotation_reconciler.core import ReconcilerCore
from annotation_reconciler.events import ChangeKind, ObjectChange
from annotation_reconciler.ledger import event_order, missing_files, quarantines, resurrections
from annotation_reconciler.ledger.models import Source
from annotation_reconciler.lifecycle import AnnotationRef
from annotation_reconciler.paths import BucketLayout, KeyKind, classify_key, is_safe_key
from annotation_reconciler.portal import annotation_rows
from annotation_reconciler.results import ChangeResult
from annotation_reconciler.settings import Settings


@dataclass
class MetadataOutcome:
    unmatched_keys: list[str] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    resurrected: list[tuple[int, str]] = field(default_factory=list)
    out_of_order: int = 0  # events older than what the annotation's row has seen: nothing done


def zarr_ancestors(key: str) -> list[str]:
    """The key itself and every ``*.zarr`` prefix it lies inside (a removed chunk points at its zarr)."""
    parts = key.split("/")
    found = [key]
    for i in range(1, len(parts)):
        if parts[i - 1].endswith(".zarr"):
            found.append("/".join(parts[:i]))
    return found


def apply_metadata_changes(
    conn: Any,
    layout: BucketLayout,
    settings: Settings,
    latest: Mapping[str, tuple[ChangeKind, ordering.Stamp]],
    now: datetime.datetime,
) -> MetadataOutcome:
    """Each metadata key's last change: quarantine or release its annotations (one query maps them all)."""
    out = MetadataOutcome()
    refs = annotation_rows.annotations_by_paths(conn, [f for k in latest for f in layout.stored_forms(k)])
    by_key: dict[str, list[AnnotationRef]] = defaultdict(list)
    for ref in refs:
        key = layout.to_key(ref.stored_path)
        if key is not None:
            by_key[key].append(ref)
    removed_keys = sorted(k for k, (kind, _) in latest.items() if kind is ChangeKind.REMOVED)
    created_keys = sorted(k for k, (kind, _) in latest.items() if kind is ChangeKind.CREATED)
    out.unmatched_keys = [k for k in removed_keys if k not in by_key]
    rows = event_order.newest_rows(conn, [ref.id for ref in refs])
    removed: list[tuple[AnnotationRef, str, ordering.Stamp]] = []
    for key in removed_keys:
        stamp = latest[key][1]
        for ref in by_key.get(key, []):
            if ordering.may_quarantine(rows.get(ref.id), stamp):
                removed.append((ref, key, stamp))
            else:
                out.out_of_order += 1
    out.quarantined = quarantines.quarantine(
        conn,
        [(ref, key) for ref, key, _ in removed],
        source=Source.EVENT,
        reason="metadata object removed (S3 event)",
        now=now,
        grace=settings.grace_period,
    )
    event_order.stamp_open_rows(conn, [(ref.id, stamp) for ref, _, stamp in removed])
    created = [(ref.id, latest[key][1]) for key in created_keys for ref in by_key.get(key, [])]
    out.released = event_order.release_older(conn, created, now=now, resolution="metadata object created again")
    event_order.lapse_exemptions(conn, created, now=now, why="metadata object created again")
    open_before = {i for i, row in rows.items() if row.status in ("quarantined", "held")}
    out.out_of_order += len({i for i, _ in created} & open_before - set(out.released))
    out.resurrected = resurrections.record_resurrections(
        conn, created_keys, now=now, since=now - settings.resurrection_window, found_by="event"
    )
    return out


def apply_file_changes(
    conn: Any, layout: BucketLayout, files: ordering.KeyStates, now: datetime.datetime
) -> tuple[int, int]:
    """Data-file removals and creations: (reports opened, reports closed)."""
    if not (files.removed or files.created):
        return 0, 0
    removed: dict[str, set[str]] = defaultdict(set)  # stored form of a file -> the removed keys inside it
    for key in files.removed:
        for file_key in zarr_ancestors(key):
            for form in layout.stored_forms(file_key):
                removed[form].add(key)
    found = annotation_rows.files_by_paths(conn, list(removed))
    missing = [(fid, aid, path, key) for fid, aid, path in found for key in sorted(removed[path])]
    # a report closes only when the keys it names are back: another chunk of the same zarr does not close it
    restored = missing_files.resolve_missing_keys(conn, sorted(files.created), now=now)
    return missing_files.record_missing_files(conn, missing, now=now), restored


#: The longest the events path waits for a row lock (a purge settling the row): then it fails and is retried.
EVENTS_LOCK_TIMEOUT = "2s"

log = logging.getLogger(__name__)


class EventsMixin(ReconcilerCore):
    """Apply S3 object changes (events) to the ledger."""

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
        data: list[ObjectChange] = []
        for change in changes:
            kind = self._accept(change, result)
            if kind is KeyKind.METADATA:
                metadata.append(change)
            elif kind is not None:
                data.append(change)
        now = self.clock()
        latest = ordering.latest_per_key(metadata, now)
        files = ordering.last_states(data, now)
        if not (latest or files.removed or files.created):
            return result
        with self.engine.connect() as conn, conn.begin() as tx:
            conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": EVENTS_LOCK_TIMEOUT})
            applied = apply_metadata_changes(conn, self.layout, self.settings, latest, now)
            result.unmatched_keys, result.out_of_order = applied.unmatched_keys, applied.out_of_order
            result.quarantined, result.released = applied.quarantined, applied.released
            result.resurrected = applied.resurrected
            missing, restored = apply_file_changes(conn, self.layout, files, now)
            result.missing_files, result.restored_files = missing, restored
            if rollback:
                tx.rollback()
        for annotation_id, key in result.resurrected:
            log.error("purged annotation %d has its metadata back in S3: %s", annotation_id, key)
        return result
