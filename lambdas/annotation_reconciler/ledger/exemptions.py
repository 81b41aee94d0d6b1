"""Operator releases that stick: SQL over the ledger's ``exempt`` flag, one statement per call.

``annotation-reconciler release`` closes the open row *and* marks it exempt. While the annotation's
stored path is the released one, no path quarantines it again (the scan and the importer ask
``lifecycle.decide``, which reads :func:`exempted`; the events' ``quarantines.quarantine`` skips it in SQL).
The exemption lapses when the metadata is seen in S3 again (``event_order.lapse_exemptions``: a later
removal is a new state, quarantined as usual) and ends by hand with ``release --clear``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import Connection, text

from annotation_reconciler.db import int_array
from annotation_reconciler.ledger import OPEN_STATUS_LIST


def exempted(conn: Connection, annotation_ids: Sequence[int]) -> dict[int, str]:
    """annotation id -> the stored path an operator released it under, for those exempt."""
    if not annotation_ids:
        return {}
    rows = conn.execute(
        text("""SELECT DISTINCT ON (annotation_id) annotation_id, s3_metadata_path FROM
                annotation_reconciler.annotation_quarantine
                WHERE exempt AND annotation_id = ANY(CAST(:ids AS integer[])) ORDER BY annotation_id, id DESC"""),
        {"ids": int_array(annotation_ids)},
    ).all()
    return {r[0]: r[1] for r in rows}


class Released(Enum):
    """What ``release`` found: it released an open row now, the annotation was exempt already (a repeated
    release keeps the first), or there was nothing to release (then nothing was written)."""

    NOW = "released"
    ALREADY = "already released"
    NOTHING = "nothing to release"

    def __bool__(self) -> bool:
        return self is not Released.NOTHING


def release_by_operator(conn: Connection, annotation_id: int, *, now: datetime.datetime, by: str) -> Released:
    """Close the annotation's open row as released by ``by`` and make it exempt (an earlier exemption of it ends:
    the newest release is the one that counts). Without an open row nothing is written: an annotation an operator
    released already stays released (``ALREADY``), any other is ``NOTHING``."""
    released = conn.execute(
        text(f"""UPDATE annotation_reconciler.annotation_quarantine
                 SET status = 'released', resolved_at = :now, resolved_by = :by, exempt = true, claimed_until = NULL,
                     resolution = 'released by ' || :by || ': exempt until its metadata or stored path changes'
                 WHERE annotation_id = :id AND status IN {OPEN_STATUS_LIST}
                 RETURNING id"""),  # noqa: S608 (a constant of ledger/models.py)
        {"id": annotation_id, "now": now, "by": by},
    ).scalar()
    if released is None:
        return Released.ALREADY if exempted(conn, [annotation_id]) else Released.NOTHING
    conn.execute(
        text("""UPDATE annotation_reconciler.annotation_quarantine SET exempt = false
                WHERE exempt AND annotation_id = :id AND id <> :kept"""),
        {"id": annotation_id, "kept": released},
    )
    return Released.NOW


def clear(conn: Connection, annotation_id: int, *, now: datetime.datetime, by: str) -> int:
    """End the exemption of an annotation by hand (the next scan or event judges it as usual)."""
    return conn.execute(
        text("""UPDATE annotation_reconciler.annotation_quarantine
                SET exempt = false,
                    resolution = resolution || '; exemption cleared by ' || :by || ' at ' || CAST(:now AS text)
                WHERE exempt AND annotation_id = :id"""),
        {"id": annotation_id, "now": now, "by": by},
    ).rowcount


@dataclass(frozen=True)
class Exemption:
    annotation_id: int
    dataset_id: int | None
    s3_metadata_path: str
    released_by: str | None
    released_at: datetime.datetime | None
    status: str = "released"  # or "restored": an operator put the purged annotation back (`restore`)


def listed(conn: Connection, dataset_id: int | None = None) -> list[Exemption]:
    """Every annotation an operator released or restored and that stays exempt (of ``dataset_id``), oldest first
    (for ``status``)."""
    rows = conn.execute(
        text("""SELECT annotation_id, dataset_id, s3_metadata_path, resolved_by, COALESCE(restored_at, resolved_at),
                       status
                FROM annotation_reconciler.annotation_quarantine
                WHERE exempt AND (CAST(:d AS integer) IS NULL OR dataset_id = :d)
                ORDER BY COALESCE(restored_at, resolved_at), annotation_id"""),
        {"d": dataset_id},
    ).all()
    return [Exemption(*r) for r in rows]


def exemption_of(conn: Connection, annotation_id: int) -> Exemption | None:
    """The operator's release that keeps this annotation exempt, if any (for a repeated ``release``)."""
    row = conn.execute(
        text("""SELECT annotation_id, dataset_id, s3_metadata_path, resolved_by, COALESCE(restored_at, resolved_at),
                       status
                FROM annotation_reconciler.annotation_quarantine WHERE exempt AND annotation_id = :id
                ORDER BY id DESC LIMIT 1"""),
        {"id": annotation_id},
    ).first()
    return None if row is None else Exemption(*row)
