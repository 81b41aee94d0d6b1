"""What a batch of S3 object changes does to the ledger, inside the events path's transaction.

Metadata keys: a removal quarantines the key's annotations, a creation releases them, each only when the
event is newer than what the annotation's ledger row has seen (:mod:`ordering`). Data files: a removal
opens (or extends) a missing-file report naming the removed key; a creation takes its key off the reports,
which close when none of their keys is missing any more. A batch is at most three statements
(``ledger/event_batch.py``)::

    latest = ordering.latest_per_key(changes, now)
    applied, writes = map_changes(conn, layout, latest, ordering.last_states(data_changes, now))   # 1 read
    written = event_batch.write_changes(conn, writes, ...)                                         # 1 write
    restored = event_batch.stamp_and_resolve(conn, rows_to_stamp, data_keys_back, now=now)         # 0 or 1
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from annotation_reconciler.ledger import event_batch
from annotation_reconciler.rules import ordering
from annotation_reconciler.rules.lifecycle import AnnotationRef
from annotation_reconciler.rules.notifications import ChangeKind, ObjectChange
from annotation_reconciler.rules.paths import BucketLayout, KeyKind, classify_key, is_safe_key
from annotation_reconciler.service.context import Context
from annotation_reconciler.service.results import ChangeResult


@dataclass
class MappedChanges:
    """What the mapping of a batch's metadata keys decided before anything is written."""

    unmatched_keys: list[str] = field(default_factory=list)
    out_of_order: int = 0  # events older than what the annotation's row has seen: nothing done
    stamps: list[tuple[int, ordering.Stamp]] = field(default_factory=list)  # the removals to stamp open rows with
    open_before: set[int] = field(default_factory=set)  # annotations whose newest row was open


def zarr_ancestors(key: str) -> list[str]:
    """The key itself and every ``*.zarr`` prefix it lies inside (a removed chunk points at its zarr)."""
    parts = key.split("/")
    found = [key]
    for i in range(1, len(parts)):
        if parts[i - 1].endswith(".zarr"):
            found.append("/".join(parts[:i]))
    return found


def map_changes(
    conn: Any,
    layout: BucketLayout,
    latest: Mapping[str, tuple[ChangeKind, ordering.Stamp]],
    files: ordering.KeyStates,
) -> tuple[MappedChanges, event_batch.BatchWrites]:
    """Each metadata key's last change decided against its annotations' newest ledger rows (one query maps them
    all, and sets the transaction's lock timeout), and the removed data files' stored forms: what to write."""
    out = MappedChanges()
    forms = [f for k in latest for f in layout.stored_forms(k)]
    refs, rows = event_batch.map_metadata(conn, forms, lock_timeout=EVENTS_LOCK_TIMEOUT)
    by_key: dict[str, list[AnnotationRef]] = defaultdict(list)
    for ref in refs:
        key = layout.to_key(ref.stored_path)
        if key is not None:
            by_key[key].append(ref)
    removed_keys = sorted(k for k, (kind, _) in latest.items() if kind is ChangeKind.REMOVED)
    created_keys = sorted(k for k, (kind, _) in latest.items() if kind is ChangeKind.CREATED)
    out.unmatched_keys = [k for k in removed_keys if k not in by_key]
    removed: list[tuple[AnnotationRef, str, ordering.Stamp]] = []
    for key in removed_keys:
        stamp = latest[key][1]
        for ref in by_key.get(key, []):
            if ordering.may_quarantine(rows.get(ref.id), stamp):
                removed.append((ref, key, stamp))
            else:
                out.out_of_order += 1
    out.stamps = [(ref.id, stamp) for ref, _, stamp in removed]
    out.open_before = {i for i, row in rows.items() if row.status in ("quarantined", "held")}
    writes = event_batch.BatchWrites(
        removed=removed,
        created=[(ref.id, latest[key][1]) for key in created_keys for ref in by_key.get(key, [])],
        created_keys=created_keys,
        missing=removed_files(layout, files),
    )
    return out, writes


def removed_files(layout: BucketLayout, files: ordering.KeyStates) -> list[tuple[str, str]]:
    """(stored form of a data file, a removed key inside it) for the removed data-file keys (a removed zarr chunk
    points at its zarr)."""
    pairs = {
        (form, key) for key in files.removed for inner in zarr_ancestors(key) for form in layout.stored_forms(inner)
    }
    return sorted(pairs)


#: The longest the events path waits for a row lock (a purge settling the row): then it fails and is retried.
EVENTS_LOCK_TIMEOUT = "2s"

log = logging.getLogger(__name__)


def _accept(layout: BucketLayout, change: ObjectChange, result: ChangeResult) -> KeyKind | None:
    if change.bucket != layout.bucket:
        result.ignored["other_bucket"] += 1
        return None
    if not is_safe_key(change.key):
        result.ignored["unsafe_key"] += 1
        return None
    if not change.key.startswith(layout.root):
        result.ignored["outside_prefix"] += 1
        return None
    kind = classify_key(change.key)
    if kind is KeyKind.OTHER:
        result.ignored["other_kind"] += 1
        return None
    return kind


def apply_changes(ctx: Context, changes: Sequence[ObjectChange], *, rollback: bool = False) -> ChangeResult:
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
        kind = _accept(ctx.layout, change, result)
        if kind is KeyKind.METADATA:
            metadata.append(change)
        elif kind is not None:
            data.append(change)
    now = ctx.clock()
    latest = ordering.latest_per_key(metadata, now)
    files = ordering.last_states(data, now)
    if not (latest or files.removed or files.created):
        return result
    with ctx.engine.connect() as conn, conn.begin() as tx:
        applied, writes = map_changes(conn, ctx.layout, latest, files)
        written = event_batch.write_changes(
            conn,
            writes,
            now=now,
            grace=ctx.settings.grace_period,
            resurrection_since=now - ctx.settings.resurrection_window,
        )
        # a row opened by this batch has its removal's stamp; the others (open before, or opened meanwhile by
        # another batch: not returned) get the newer of theirs and the removal's, as they always did
        opened = set(written.quarantined)
        stamps = [(i, stamp) for i, stamp in applied.stamps if i in applied.open_before or i not in opened]
        restored = event_batch.stamp_and_resolve(conn, stamps, sorted(files.created), now=now)
        result.unmatched_keys = applied.unmatched_keys
        # a Created event that released nothing though the row was open: the row has seen something newer
        result.out_of_order = applied.out_of_order + len(
            {i for i, _ in writes.created} & applied.open_before - set(written.released)
        )
        result.quarantined, result.released = written.quarantined, written.released
        result.resurrected = written.resurrected
        result.missing_files, result.restored_files = written.missing_files, restored
        if rollback:
            tx.rollback()
    for annotation_id, key in result.resurrected:
        log.error("purged annotation %d has its metadata back in S3: %s", annotation_id, key)
    return result
