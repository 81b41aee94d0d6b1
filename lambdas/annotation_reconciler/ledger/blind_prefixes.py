"""The prefixes S3 would not list after their retries: one row each, open until the prefix lists again.
Each call is one statement in the caller's transaction."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from annotation_reconciler.db import text_array


@dataclass(frozen=True)
class BlindPrefix:
    prefix: str
    dataset_id: int | None
    first_failed_at: datetime.datetime
    last_failed_at: datetime.datetime
    failures: int
    last_error: str


def record(conn: Connection, errors: Mapping[str, str], *, dataset_id: int | None, now: datetime.datetime) -> None:
    """Mark these prefixes blind (prefix -> the last S3 error, its first 2,000 characters kept)."""
    if not errors:
        return
    conn.execute(
        text("""INSERT INTO annotation_reconciler.blind_prefix AS b
                  (prefix, dataset_id, first_failed_at, last_failed_at, failures, last_error)
                SELECT p, :dataset_id, :now, :now, 1, e
                FROM unnest(CAST(:prefixes AS text[]), CAST(:errors AS text[])) AS f(p, e)
                ON CONFLICT (prefix) DO UPDATE
                  SET last_failed_at = :now, last_error = EXCLUDED.last_error, dataset_id = EXCLUDED.dataset_id,
                      failures = CASE WHEN b.resolved_at IS NULL THEN b.failures + 1 ELSE 1 END,
                      first_failed_at = CASE WHEN b.resolved_at IS NULL THEN b.first_failed_at ELSE :now END,
                      resolved_at = NULL"""),
        {
            "prefixes": sorted(errors),
            "errors": [errors[p][:2000] for p in sorted(errors)],
            "dataset_id": dataset_id,
            "now": now,
        },
    )


def resolve(conn: Connection, listed: Sequence[str], *, now: datetime.datetime) -> None:
    """Close the blind rows of prefixes that listed completely."""
    if not listed:
        return
    conn.execute(
        text("""UPDATE annotation_reconciler.blind_prefix SET resolved_at = :now
                WHERE resolved_at IS NULL AND prefix = ANY(CAST(:prefixes AS text[]))"""),
        {"prefixes": text_array(listed), "now": now},
    )


def open_rows(conn: Connection) -> list[BlindPrefix]:
    rows = conn.execute(
        text("""SELECT prefix, dataset_id, first_failed_at, last_failed_at, failures, last_error
                FROM annotation_reconciler.blind_prefix WHERE resolved_at IS NULL ORDER BY prefix""")
    ).all()
    return [BlindPrefix(*r) for r in rows]
