"""A batch of S3 events in at most three statements: what the batch's metadata keys map to, everything the batch
writes, and what must see those writes.

1. :func:`map_metadata`: sets the transaction's ``lock_timeout`` and maps the stored forms of the batch's metadata
   keys to their annotations, each with its newest ledger row (one read);
2. :func:`write_changes`: opens the removed keys' rows (``quarantines.QUARANTINE_SQL``), releases and ends the
   exemptions of the re-created keys' annotations (``event_order.RELEASE_OLDER_SQL``, ``LAPSE_SQL``), records the
   purged annotations whose key is back (``resurrections.RECORD_SQL``) and the missing data files
   (``missing_files.RECORD_BY_PATHS_SQL``), as data-modifying CTEs of one statement;
3. :func:`stamp_and_resolve`, only when needed: stamps the open rows of the removed keys that step 2 did not open
   with their removal's stamp (rows open before, or opened meanwhile by another batch: ``event_order.STAMP_SQL``),
   and takes the re-created data files off their reports after step 2 added the removed ones
   (``missing_files.RESOLVE_SQL``). A batch of fresh removals is two statements.

Each CTE is the statement its own module runs alone. The CTEs of one statement touch disjoint rows (PostgreSQL
cannot order two changes of one row in one statement): the removed and the re-created keys are different
annotations (an annotation has one stored path, so one key), ``RELEASE_OLDER_SQL`` changes open rows and
``LAPSE_SQL`` exempt ones (only a closed row is exempt), ``RECORD_SQL`` reads purged rows. What needs another's
rows, the stamp after the quarantine and the resolution after the recording, is in the next statement.

The scan's listing releases and lapses in one statement the same way (:func:`release_and_lapse`).

Functions take a Connection in the caller's transaction; none of them commits.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from annotation_reconciler.db import text_array
from annotation_reconciler.ledger import Source, event_order, missing_files, quarantines, resurrections
from annotation_reconciler.rules.lifecycle import AnnotationRef
from annotation_reconciler.rules.ordering import RowState, Stamp

# a LEFT JOIN from the one-row set_config: the setting is made even when no annotation matches
_MAP_SQL = """SELECT m.id, m.s3_metadata_path, m.dataset_id, m.run_id,
                     m.status, m.event_time, m.event_sequencer, m.event_until
              FROM (SELECT set_config('lock_timeout', :lock_timeout, true)) AS lt(v)
              LEFT JOIN (
                SELECT a.id, a.s3_metadata_path, r.dataset_id, a.run_id,
                       n.status, n.event_time, n.event_sequencer, n.event_until
                FROM annotation a LEFT JOIN run r ON r.id = a.run_id
                LEFT JOIN LATERAL (SELECT q.status, q.event_time, q.event_sequencer, q.event_until
                                   FROM annotation_reconciler.annotation_quarantine q
                                   WHERE q.annotation_id = a.id ORDER BY q.id DESC LIMIT 1) AS n ON true
                WHERE a.s3_metadata_path = ANY(CAST(:paths AS text[]))
              ) AS m ON lt.v IS NOT NULL"""

_WRITE_SQL = f"""WITH quarantined AS ({quarantines.QUARANTINE_SQL}),
                      released AS ({event_order.RELEASE_OLDER_SQL}),
                      lapsed AS ({event_order.LAPSE_SQL}),
                      resurrected AS ({resurrections.RECORD_SQL}),
                      missing AS ({missing_files.RECORD_BY_PATHS_SQL})
                 SELECT ARRAY(SELECT annotation_id FROM quarantined ORDER BY 1),
                        ARRAY(SELECT DISTINCT annotation_id FROM released ORDER BY 1),
                        ARRAY(SELECT annotation_id FROM resurrected ORDER BY 1, metadata_key),
                        ARRAY(SELECT metadata_key FROM resurrected ORDER BY annotation_id, 1),
                        (SELECT count(*) FROM missing WHERE opened),
                        (SELECT count(*) FROM lapsed)"""  # noqa: S608 (module constants of the ledger)

_STAMP_AND_RESOLVE_SQL = f"""WITH stamped AS ({event_order.STAMP_SQL}),
                                  resolved AS ({missing_files.RESOLVE_SQL})
                             SELECT count(*) FROM resolved WHERE closed"""  # noqa: S608 (module constants)


def map_metadata(
    conn: Connection, stored_paths: Sequence[str], *, lock_timeout: str
) -> tuple[list[AnnotationRef], dict[int, RowState]]:
    """Set ``lock_timeout`` for the transaction, and find the annotations whose s3_metadata_path is any of
    ``stored_paths``, with each one's newest ledger row (status and stamp; none for an annotation without)."""
    params = {"lock_timeout": lock_timeout, "paths": text_array(sorted(set(stored_paths)))}
    rows = conn.execute(text(_MAP_SQL), params).all()
    refs: list[AnnotationRef] = []
    states: dict[int, RowState] = {}
    for r in rows:
        if r.id is None:
            continue
        refs.append(AnnotationRef(r.id, r.s3_metadata_path, r.dataset_id, r.run_id))
        if r.status is not None:
            stamp = Stamp(r.event_time, r.event_sequencer, r.event_until) if r.event_time else None
            states[r.id] = RowState(r.status, stamp)
    return refs, states


@dataclass(frozen=True)
class BatchWrites:
    """What a batch writes in :func:`write_changes`."""

    removed: Sequence[tuple[AnnotationRef, str, Stamp]] = ()  # (annotation, its removed key, the removal) to quarantine
    created: Sequence[tuple[int, Stamp]] = ()  # (annotation, the Created event's stamp) to release
    created_keys: Sequence[str] = ()  # the re-created metadata keys (purged annotations found again)
    missing: Sequence[tuple[str, str]] = ()  # (stored form of a data file, a removed key inside it)
    reason: str = "metadata object removed (S3 event)"
    resolution: str = "metadata object created again"


@dataclass
class BatchWritten:
    quarantined: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    resurrected: list[tuple[int, str]] = field(default_factory=list)
    missing_files: int = 0


def write_changes(
    conn: Connection,
    writes: BatchWrites,
    *,
    now: datetime.datetime,
    grace: datetime.timedelta,
    resurrection_since: datetime.datetime,
) -> BatchWritten:
    """Quarantine, release, lapse exemptions, record resurrections and missing files: one statement (a batch of
    removed metadata keys alone: the quarantine's own statement, cheaper to plan). A newly opened row starts with
    its removal's stamp."""
    if not (writes.removed or writes.created or writes.created_keys or writes.missing):
        return BatchWritten()
    items = [(ref, key) for ref, key, _ in writes.removed]
    stamps = [stamp for _, _, stamp in writes.removed]
    opening = quarantines.Opening(Source.EVENT, writes.reason, now, grace).params(items, stamps)
    if not (writes.created or writes.created_keys or writes.missing):
        return BatchWritten(sorted(conn.execute(text(quarantines.QUARANTINE_SQL), opening).scalars()))
    params = {
        **opening,
        **event_order.stamp_params(writes.created),
        **resurrections.record_params(writes.created_keys, now=now, since=resurrection_since, found_by="event"),
        "resolution": writes.resolution,
        "why": writes.resolution,
        "m_forms": text_array(form for form, _ in writes.missing),
        "m_keys": text_array(key for _, key in writes.missing),
        "now": now,
    }
    quarantined, released, back_ids, back_keys, opened, _ = conn.execute(text(_WRITE_SQL), params).one()
    return BatchWritten(sorted(quarantined), sorted(released), list(zip(back_ids, back_keys, strict=True)), int(opened))


def stamp_and_resolve(
    conn: Connection, removed: Sequence[tuple[int, Stamp]], back: Sequence[str], *, now: datetime.datetime
) -> int:
    """Stamp the open rows of the removed metadata keys' annotations; take the data-file keys that are back off
    their reports. Returns how many reports closed."""
    if not (removed or back):
        return 0
    params = {**event_order.stamp_params(removed), **missing_files.resolve_params(back, now=now)}
    return int(conn.execute(text(_STAMP_AND_RESOLVE_SQL), params).scalar_one())


_RELEASE_AND_LAPSE_SQL = f"""WITH released AS ({event_order.RELEASE_OLDER_SQL}), lapsed AS ({event_order.LAPSE_SQL})
                             SELECT ARRAY(SELECT DISTINCT annotation_id FROM released ORDER BY 1),
                                    (SELECT count(*) FROM lapsed)"""  # noqa: S608 (module constants of the ledger)


def release_and_lapse(
    conn: Connection, items: Sequence[tuple[int, Stamp]], *, now: datetime.datetime, resolution: str
) -> list[int]:
    """``event_order.release_older`` and ``lapse_exemptions`` with the same stamps and reason, in one statement (a
    listing that held the keys: the scan): the two change disjoint rows, open ones and exempt (closed) ones.
    Returns the annotation ids released."""
    if not items:
        return []
    params = {**event_order.stamp_params(items), "now": now, "resolution": resolution, "why": resolution}
    released, _ = conn.execute(text(_RELEASE_AND_LAPSE_SQL), params).one()
    return sorted(released)
