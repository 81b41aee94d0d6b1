"""The quarantine rows of the ledger: open (quarantine, hold), close (release), approve, and count them for the
mass-deletion guard. One statement per call.

Functions take a Connection in the caller's transaction; none of them commits.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from annotation_reconciler.db import int_array, text_array, time_array
from annotation_reconciler.ledger import OPEN_STATUS_LIST, Source, Status
from annotation_reconciler.rules.lifecycle import AnnotationRef
from annotation_reconciler.rules.listings import canonical
from annotation_reconciler.rules.ordering import Stamp

#: Open a ledger row per annotation (see :func:`quarantine`); the events path runs it inside a larger statement
#: (``ledger/event_batch.py``), so its parameters are named ``q_*`` (``:now`` is shared).
QUARANTINE_SQL = """INSERT INTO annotation_reconciler.annotation_quarantine
          (annotation_id, dataset_id, run_id, s3_metadata_path, metadata_key, metadata_key_folded, source, reason,
           status, detected_at, purge_after, event_time, event_sequencer, event_until)
        SELECT d.id, d.dataset_id, d.run_id, d.path, d.key, d.folded, :q_source, :q_reason, :q_status, :now,
               :q_purge_after, d.t, d.s, d.u
        FROM unnest(CAST(:q_ids AS integer[]), CAST(:q_datasets AS integer[]), CAST(:q_runs AS integer[]),
                    CAST(:q_paths AS text[]), CAST(:q_keys AS text[]), CAST(:q_folded AS text[]),
                    CAST(:q_times AS timestamptz[]), CAST(:q_seqs AS text[]), CAST(:q_untils AS timestamptz[]))
             AS d(id, dataset_id, run_id, path, key, folded, t, s, u)
        -- a release by an operator sticks (ledger/exemptions.py)
        WHERE NOT EXISTS (SELECT 1 FROM annotation_reconciler.annotation_quarantine x
                          WHERE x.exempt AND x.annotation_id = d.id AND x.s3_metadata_path = d.path)
        ON CONFLICT (annotation_id) WHERE status IN ('quarantined', 'held') DO UPDATE
          SET s3_metadata_path = EXCLUDED.s3_metadata_path, metadata_key = EXCLUDED.metadata_key,
              metadata_key_folded = EXCLUDED.metadata_key_folded, source = EXCLUDED.source,
              reason = EXCLUDED.reason || ' (quarantined again under its new stored path)',
              status = EXCLUDED.status, resolution = NULL,
              detected_at = EXCLUDED.detected_at, purge_after = EXCLUDED.purge_after,
              approved_at = NULL, approved_by = NULL, claimed_until = NULL
          WHERE annotation_quarantine.s3_metadata_path <> EXCLUDED.s3_metadata_path
        RETURNING annotation_id"""


@dataclass(frozen=True)
class Opening:
    """What the ledger rows one call opens say: who opened them and why, when, how long their grace period runs,
    and their status (quarantined, or held for an operator)."""

    source: Source
    reason: str
    now: datetime.datetime
    grace: datetime.timedelta
    status: Status = Status.QUARANTINED

    def params(
        self, items: Sequence[tuple[AnnotationRef, str | None]], stamps: Sequence[Stamp | None] | None = None
    ) -> dict[str, object]:
        """The parameters of :data:`QUARANTINE_SQL`; ``stamps`` (one per item): the stamp a newly opened row starts
        with (what ``event_order.stamp_open_rows`` would give a row without one), else none."""
        marks = list(stamps) if stamps is not None else [None] * len(items)
        return {
            "q_times": time_array(m.time if m else None for m in marks),
            "q_seqs": text_array(m.sequencer if m else None for m in marks),
            "q_untils": time_array(m.end if m else None for m in marks),
            "q_ids": int_array(r.id for r, _ in items),
            "q_datasets": int_array(r.dataset_id for r, _ in items),
            "q_runs": int_array(r.run_id for r, _ in items),
            "q_paths": text_array(r.stored_path for r, _ in items),
            "q_keys": text_array(k for _, k in items),
            "q_folded": text_array(canonical(k) if k is not None else None for _, k in items),
            "q_source": self.source.value,
            "q_reason": self.reason,
            "q_status": self.status.value,
            "now": self.now,
            "q_purge_after": self.now + self.grace,
        }


def quarantine(
    conn: Connection,
    items: Sequence[tuple[AnnotationRef, str | None]],
    opening: Opening,
    *,
    stamps: Sequence[Stamp | None] | None = None,
) -> list[int]:
    """Open a ledger row for each annotation that has none, as ``opening`` says; returns the ids newly opened.
    ``stamps`` (one per item): the stamp a newly opened row starts with.

    Idempotent: an annotation already quarantined or held under the same stored path keeps its row (and its
    clock). One whose open row names another stored path (the metadata moved, the row was rewritten) is
    quarantined again under the new path and key: the new decision (status, source, reason) replaces the old
    one whole, with a fresh grace period and no approval. One an operator released under this very stored
    path (exempt) is skipped.
    """
    if not items:
        return []
    return sorted(conn.execute(text(QUARANTINE_SQL), opening.params(items, stamps)).scalars())


def release(conn: Connection, annotation_ids: Sequence[int], *, now: datetime.datetime, resolution: str) -> list[int]:
    """Close the open rows of these annotations as released; returns the ids released."""
    if not annotation_ids:
        return []
    rows = conn.execute(
        text(f"""UPDATE annotation_reconciler.annotation_quarantine SET status = 'released', resolved_at
                = :now, resolution = :resolution
                 WHERE annotation_id = ANY(CAST(:ids AS integer[])) AND status IN {OPEN_STATUS_LIST}
                 RETURNING annotation_id"""),  # noqa: S608 (a constant of ledger/models.py)
        {"ids": list(annotation_ids), "now": now, "resolution": resolution},
    ).scalars()
    return sorted(rows)


def release_rows(conn: Connection, rows: Sequence[tuple[int, str]], *, now: datetime.datetime) -> list[int]:
    """Close open ledger rows as released, each with its own resolution: (ledger id, resolution).
    Returns the annotation ids released."""
    if not rows:
        return []
    released = conn.execute(
        text(f"""UPDATE annotation_reconciler.annotation_quarantine q
                 SET status = 'released', resolved_at = :now, resolution = r.resolution, claimed_until = NULL
                 FROM unnest(CAST(:ids AS bigint[]), CAST(:resolutions AS text[])) AS r(id, resolution)
                 WHERE q.id = r.id AND q.status IN {OPEN_STATUS_LIST}
                 RETURNING q.annotation_id"""),  # noqa: S608 (a constant of ledger/models.py)
        {"ids": [r[0] for r in rows], "resolutions": [r[1] for r in rows], "now": now},
    ).scalars()
    return sorted(released)


def hold(conn: Connection, rows: Sequence[tuple[int, str]]) -> None:
    """Hold quarantined ledger rows for an operator, each with its reason: (ledger id, reason)."""
    if not rows:
        return
    conn.execute(
        text("""UPDATE annotation_reconciler.annotation_quarantine q SET status = 'held', resolution =
                h.reason, claimed_until = NULL
                FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) AS h(id, reason)
                WHERE q.id = h.id AND q.status = 'quarantined'"""),
        {"ids": [r[0] for r in rows], "reasons": [r[1] for r in rows]},
    )


def approve_dataset(conn: Connection, dataset_id: int, *, now: datetime.datetime, by: str) -> int:
    """Let the held rows of a dataset be purged (due now, guard bypassed); returns how many."""
    return conn.execute(
        text("""UPDATE annotation_reconciler.annotation_quarantine
                SET status = 'quarantined', approved_at = :now, approved_by = :by, purge_after = :now,
                    resolution = NULL
                WHERE dataset_id = :dataset_id AND status = 'held'"""),
        {"dataset_id": dataset_id, "now": now, "by": by},
    ).rowcount


def record_approval(conn: Connection, annotation_ids: Sequence[int], *, now: datetime.datetime, by: str) -> None:
    """Name the operator who approved these held annotations on the ledger rows of their deletion at ``now``
    (``cleanup-stale-annotations --approve-held``, or its prompt)."""
    if annotation_ids:
        conn.execute(
            text("""UPDATE annotation_reconciler.annotation_quarantine SET approved_at = :now, approved_by = :by
                    WHERE annotation_id = ANY(CAST(:ids AS integer[])) AND status = 'purged' AND resolved_at = :now"""),
            {"ids": list(annotation_ids), "now": now, "by": by},
        )


def guard_counts(
    conn: Connection, dataset_ids: Sequence[int | None], *, except_annotations: Sequence[int] = ()
) -> tuple[dict[int | None, int], dict[int | None, int]]:
    """For the mass-deletion guard, in one statement (one snapshot, so a concurrent purge cannot be seen
    half done): open ledger rows per dataset other than those of ``except_annotations``, and annotations
    per dataset."""
    rows = conn.execute(
        text(f"""WITH ds AS (SELECT unnest(CAST(:ids AS integer[])) AS id)
                 SELECT ds.id,
                        (SELECT count(*) FROM annotation_reconciler.annotation_quarantine q
                         WHERE q.dataset_id = ds.id AND q.status IN {OPEN_STATUS_LIST}
                           AND q.annotation_id <> ALL(CAST(:skip AS integer[]))) AS open_rows,
                        (SELECT count(*) FROM annotation a JOIN run r ON r.id = a.run_id
                         WHERE r.dataset_id = ds.id) AS total
                 FROM ds"""),  # noqa: S608 (a constant of ledger/models.py)
        {"ids": sorted({d for d in dataset_ids if d is not None}), "skip": list(except_annotations)},
    ).all()
    return {r[0]: r[1] for r in rows if r[1]}, {r[0]: r[2] for r in rows if r[2]}
