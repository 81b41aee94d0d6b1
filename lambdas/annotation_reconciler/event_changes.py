"""What a batch of S3 object changes does to the ledger, inside the events path's transaction.

Metadata keys: a removal quarantines the key's annotations, a creation releases them, each only when the
event is newer than what the annotation's ledger row has seen (:mod:`ordering`). Data files: a removal
opens (or extends) a missing-file report naming the removed key; a creation takes its key off the reports,
which close when none of their keys is missing any more::

    latest = ordering.latest_per_key(changes, now)
    applied = apply_metadata_changes(conn, layout, settings, latest, now)
    missing, restored = apply_file_changes(conn, layout, lifecycle.last_states(data_changes), now)
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from annotation_reconciler import lifecycle, ordering
from annotation_reconciler.events import ChangeKind
from annotation_reconciler.ledger import event_order, missing_files, quarantines, resurrections
from annotation_reconciler.ledger.models import OPEN_STATUSES, Source
from annotation_reconciler.lifecycle import AnnotationRef
from annotation_reconciler.paths import BucketLayout
from annotation_reconciler.portal import annotation_rows
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
    open_before = {i for i, row in rows.items() if row.status in OPEN_STATUSES}
    out.out_of_order += len({i for i, _ in created} & open_before - set(out.released))
    out.resurrected = resurrections.record_resurrections(
        conn, created_keys, now=now, since=now - settings.resurrection_window, found_by="event"
    )
    return out


def apply_file_changes(
    conn: Any, layout: BucketLayout, files: lifecycle.KeyStates, now: datetime.datetime
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
