"""The purge's leases on due quarantine rows: claim them, lock the ones still quarantined, end the lease.

Functions take a Connection in the caller's transaction; none of them commits.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Claim:
    """A due ledger row the purge has leased: the path and key it was quarantined under."""

    quarantine_id: int
    annotation_id: int
    dataset_id: int | None
    s3_metadata_path: str
    metadata_key: str | None
    approved: bool


def claim_due(
    conn: Connection,
    *,
    now: datetime.datetime,
    limit: int,
    lease: datetime.timedelta,
    exclude: Sequence[int] = (),
) -> list[Claim]:
    """Lease up to ``limit`` quarantined rows past their grace period (rows another purge holds, by
    lock or by an unexpired lease, are skipped). The caller commits at once: no lock is held while
    S3 is asked. ``exclude`` lists ledger ids this run has already looked at."""
    rows = conn.execute(
        text("""UPDATE annotation_reconciler.annotation_quarantine q SET claimed_until = :until
                FROM (SELECT id FROM annotation_reconciler.annotation_quarantine
                      WHERE status = 'quarantined' AND purge_after <= :now
                        AND (claimed_until IS NULL OR claimed_until <= :now)
                        AND id <> ALL(CAST(:exclude AS bigint[]))
                      ORDER BY purge_failures > 0, purge_after, id
                      LIMIT :limit
                      FOR UPDATE SKIP LOCKED) AS due
                WHERE q.id = due.id
                RETURNING q.id, q.annotation_id, q.dataset_id, q.s3_metadata_path, q.metadata_key,
                          q.approved_at IS NOT NULL AS approved"""),
        {"now": now, "until": now + lease, "limit": limit, "exclude": list(exclude)},
    ).all()
    claims = [Claim(r.id, r.annotation_id, r.dataset_id, r.s3_metadata_path, r.metadata_key, r.approved) for r in rows]
    return sorted(claims, key=lambda c: c.quarantine_id)


def lock_claims(conn: Connection, claims: Sequence[Claim]) -> list[Claim]:
    """Lock the claimed rows that are still quarantined, as they are now (an event may have released one,
    an operator approved one meanwhile). Held briefly: no S3 call happens under this lock."""
    if not claims:
        return []
    rows = conn.execute(
        text("""SELECT id, annotation_id, dataset_id, s3_metadata_path, metadata_key,
                       approved_at IS NOT NULL AS approved
                FROM annotation_reconciler.annotation_quarantine
                WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'quarantined'
                ORDER BY id FOR UPDATE"""),
        {"ids": [c.quarantine_id for c in claims]},
    ).all()
    return [Claim(r.id, r.annotation_id, r.dataset_id, r.s3_metadata_path, r.metadata_key, r.approved) for r in rows]


def end_claims(conn: Connection, quarantine_ids: Sequence[int], *, settled: bool = True) -> None:
    """Drop the lease of rows the purge left quarantined (unknown, dry run): the next purge takes them. A row
    ``settled`` (the purge decided it without an error) loses the error an earlier purge marked it with."""
    if not quarantine_ids:
        return
    if settled:
        conn.execute(
            text("""UPDATE annotation_reconciler.annotation_quarantine
                    SET claimed_until = NULL, purge_error = NULL, purge_failures = 0, unknown_reason = NULL
                    WHERE id = ANY(CAST(:ids AS bigint[]))"""),
            {"ids": list(quarantine_ids)},
        )
        return
    conn.execute(
        text("""UPDATE annotation_reconciler.annotation_quarantine SET claimed_until = NULL
                WHERE id = ANY(CAST(:ids AS bigint[]))"""),
        {"ids": list(quarantine_ids)},
    )


def mark_failed(conn: Connection, quarantine_id: int, *, error: str, now: datetime.datetime) -> None:
    """A due row the purge could not settle even alone: keep its error (first 2,000 characters) and end the
    lease. It stays quarantined; the next purge tries it again, after the rows that have not failed."""
    conn.execute(
        text("""UPDATE annotation_reconciler.annotation_quarantine
                SET claimed_until = NULL, purge_error = :error, purge_failed_at = :now,
                    purge_failures = purge_failures + 1
                WHERE id = :id"""),
        {"id": quarantine_id, "error": error[:2000], "now": now},
    )


def mark_unknown(conn: Connection, rows: Sequence[tuple[int, str]]) -> None:
    """Due rows the purge could not decide (S3 could not say): keep why, (ledger id, reason), for ``status``."""
    if rows:
        conn.execute(
            text("""UPDATE annotation_reconciler.annotation_quarantine q SET unknown_reason = u.reason
                    FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) AS u(id, reason)
                    WHERE q.id = u.id AND q.status = 'quarantined'"""),
            {"ids": [r[0] for r in rows], "reasons": [r[1][:2000] for r in rows]},
        )
