"""SQL that keeps the order of events on ledger rows: each call is one statement in the caller's
transaction. A row remembers the (eventTime, sequencer) of the event that opened or last closed it, or
for a row a listing opened, the time that listing started; see :mod:`annotation_reconciler.rules.ordering`."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from sqlalchemy import Connection, text

from annotation_reconciler.db import int_array, text_array, time_array
from annotation_reconciler.ledger import OPEN_STATUS_LIST
from annotation_reconciler.rules.ordering import RowState, Stamp, newer

# In the statements below, the change ``c`` (time t, end of its interval u, sequencer s) is strictly newer than
# the row ``q`` when c began once q's interval was over (t >= q's end and t > q's time), or, their intervals
# overlapping, when both sequencers are known and c's is greater: upper-cased, left-padded with zeros to
# ordering.SEQUENCER_WIDTH (64), compared byte by byte (COLLATE "C"). A row written without a stamp counts as
# stamped at its detection, an instant, without a sequencer. See ordering.newer.


# the change c is strictly newer than the row q (see the comment above); q's time is
# COALESCE(q.event_time, q.detected_at) and its end COALESCE(q.event_until, q.event_time, q.detected_at)
_C_IS_NEWER = """((c.t >= COALESCE(q.event_until, q.event_time, q.detected_at)
        AND c.t > COALESCE(q.event_time, q.detected_at))
       OR (q.event_sequencer IS NOT NULL AND c.s IS NOT NULL
           AND NOT (COALESCE(q.event_time, q.detected_at) >= c.u AND COALESCE(q.event_time, q.detected_at) > c.t)
           AND lpad(upper(q.event_sequencer), 64, '0') COLLATE "C"
               < lpad(upper(c.s), 64, '0') COLLATE "C"))"""
_CHANGES = (
    "unnest(CAST(:ids AS integer[]), CAST(:times AS timestamptz[]), CAST(:seqs AS text[]), "
    "CAST(:untils AS timestamptz[])) AS c(id, t, s, u)"
)


# Each statement below takes the change stamps as ``:ids``, ``:times``, ``:seqs``, ``:untils`` (:func:`stamp_params`);
# the events path also runs them inside larger statements (``ledger/event_batch.py``).

#: Give open rows the newer of their stamp and the change's (:func:`stamp_open_rows`).
STAMP_SQL = f"""UPDATE annotation_reconciler.annotation_quarantine q
                 SET event_time = c.t, event_sequencer = c.s, event_until = c.u
                 FROM {_CHANGES}
                 WHERE q.annotation_id = c.id AND q.status IN {OPEN_STATUS_LIST}
                   AND (q.event_time IS NULL OR {_C_IS_NEWER})"""  # noqa: S608 (constants of this module)

#: Release the open rows older than the change (:func:`release_older`); ``:now``, ``:resolution``.
RELEASE_OLDER_SQL = f"""UPDATE annotation_reconciler.annotation_quarantine q
                 SET status = 'released', resolved_at = :now, resolution = :resolution, claimed_until = NULL,
                     event_time = c.t, event_sequencer = c.s, event_until = c.u
                 FROM {_CHANGES}
                 WHERE q.annotation_id = c.id AND q.status IN {OPEN_STATUS_LIST}
                   AND {_C_IS_NEWER}
                 RETURNING q.annotation_id"""  # noqa: S608 (constants of this module)

#: End the exemptions older than the change (:func:`lapse_exemptions`); ``:now``, ``:why``.
LAPSE_SQL = f"""UPDATE annotation_reconciler.annotation_quarantine q
                 SET exempt = false,
                     resolution = q.resolution || '; exemption lapsed at ' || CAST(:now AS text) || ': ' || :why
                 FROM {_CHANGES}
                 WHERE q.annotation_id = c.id AND q.exempt
                   AND {_C_IS_NEWER}
                 RETURNING q.annotation_id"""  # noqa: S608 (constants of this module)


def stamp_params(items: Sequence[tuple[int, Stamp]]) -> dict[str, object]:
    """The stamp parameters of the statements above: one stamp per annotation, its newest."""
    newest: dict[int, Stamp] = {}
    for annotation_id, stamp in items:  # one stamp per annotation: the newest
        if annotation_id not in newest or newer(stamp, newest[annotation_id]):
            newest[annotation_id] = stamp
    ids = sorted(newest)
    return {
        "ids": int_array(ids),
        "times": time_array(newest[i].time for i in ids),
        "seqs": text_array(newest[i].sequencer for i in ids),
        "untils": time_array(newest[i].end for i in ids),
    }


def newest_rows(conn: Connection, annotation_ids: Sequence[int]) -> dict[int, RowState]:
    """Each annotation's newest ledger row: its status and stamp (None when the row has none)."""
    if not annotation_ids:
        return {}
    rows = conn.execute(
        text("""SELECT DISTINCT ON (annotation_id) annotation_id, status, event_time, event_sequencer, event_until
                FROM annotation_reconciler.annotation_quarantine WHERE annotation_id = ANY(CAST(:ids AS integer[]))
                ORDER BY annotation_id, id DESC"""),
        {"ids": int_array(sorted(set(annotation_ids)))},
    ).all()
    return {
        r.annotation_id: RowState(
            r.status, Stamp(r.event_time, r.event_sequencer, r.event_until) if r.event_time else None
        )
        for r in rows
    }


def stamp_open_rows(conn: Connection, items: Sequence[tuple[int, Stamp]]) -> None:
    """Give the open rows of these annotations the newer of their stamp and the given one (a removal seen)."""
    if not items:
        return
    conn.execute(text(STAMP_SQL), stamp_params(items))


def release_older(
    conn: Connection, items: Sequence[tuple[int, Stamp]], *, now: datetime.datetime, resolution: str
) -> list[int]:
    """Release the open rows of these annotations whose own stamp is older than the given one (the Created
    event, or the start of the listing that saw the key); a row that has seen something newer stays.
    Returns the annotation ids released."""
    if not items:
        return []
    rows = conn.execute(
        text(RELEASE_OLDER_SQL),
        {**stamp_params(items), "now": now, "resolution": resolution},
    ).scalars()
    return sorted(set(rows))


def lapse_exemptions(
    conn: Connection, items: Sequence[tuple[int, Stamp]], *, now: datetime.datetime, why: str
) -> list[int]:
    """The metadata of these annotations was seen in S3 (a Created event, or a listing that held the key):
    an operator's release of them stops being exempt (see ``ledger/exemptions.py``), but only when what
    saw it is strictly newer than the row's stamp; a redelivered Created older than the removal the
    operator released changes nothing. Returns the annotation ids whose exemption lapsed."""
    if not items:
        return []
    rows = conn.execute(
        text(LAPSE_SQL),
        {**stamp_params(items), "now": now, "why": why},
    ).scalars()
    return sorted(set(rows))
