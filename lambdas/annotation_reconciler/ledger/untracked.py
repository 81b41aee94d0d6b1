"""Untracked metadata: keys in S3 that no annotation row points to. One statement per call, in the caller's
transaction. A scan records what its complete listings hold untracked and closes the rows of those prefixes that
are tracked (ingested) or gone since; ``status`` reads the open ones."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from annotation_reconciler.db import int_array, text_array


@dataclass(frozen=True)
class Untracked:
    metadata_key: str
    dataset_id: int | None
    first_seen_at: datetime.datetime
    last_seen_at: datetime.datetime
    moved_annotation_id: int | None


def record(
    conn: Connection,
    listed: Mapping[str, Sequence[str]],
    *,
    dataset_id: int | None,
    now: datetime.datetime,
    moved: Mapping[str, int] | None = None,
    whole_bucket: bool = False,
) -> None:
    """For each completely listed ``Annotations/`` prefix -> the untracked metadata keys in it: open (or refresh)
    their rows, and close the open rows of those prefixes whose key is not among them any more (``whole_bucket``:
    of every prefix, as an S3 Inventory report covers them all). ``moved``: key -> the annotation whose natural key
    it carries."""
    if not listed and not whole_bucket:
        return
    moved = moved or {}
    keys = sorted(k for ks in listed.values() for k in ks)
    conn.execute(
        text("""UPDATE annotation_reconciler.untracked_metadata SET resolved_at = :now
                WHERE resolved_at IS NULL AND (:whole OR prefix = ANY(CAST(:prefixes AS text[])))
                  AND metadata_key <> ALL(CAST(:keys AS text[]))"""),
        {"prefixes": text_array(sorted(listed)), "keys": text_array(keys), "now": now, "whole": whole_bucket},
    )
    if not keys:
        return
    prefix_of = {k: p for p, ks in listed.items() for k in ks}
    conn.execute(
        text("""INSERT INTO annotation_reconciler.untracked_metadata AS u
                  (metadata_key, prefix, dataset_id, first_seen_at, last_seen_at, moved_annotation_id)
                SELECT k, p, :dataset_id, :now, :now, m
                FROM unnest(CAST(:keys AS text[]), CAST(:prefixes AS text[]), CAST(:moved AS integer[])) AS f(k, p, m)
                ON CONFLICT (metadata_key) DO UPDATE
                  SET last_seen_at = :now, moved_annotation_id = EXCLUDED.moved_annotation_id,
                      dataset_id = COALESCE(EXCLUDED.dataset_id, u.dataset_id),
                      first_seen_at = CASE WHEN u.resolved_at IS NULL THEN u.first_seen_at ELSE :now END,
                      resolved_at = NULL"""),
        {
            "keys": text_array(keys),
            "prefixes": text_array(prefix_of[k] for k in keys),
            "moved": int_array(moved.get(k) for k in keys),
            "dataset_id": dataset_id,
            "now": now,
        },
    )


def open_rows(conn: Connection) -> list[Untracked]:
    """Every untracked metadata key still open, in key order (for ``status``)."""
    rows = conn.execute(
        text("""SELECT metadata_key, dataset_id, first_seen_at, last_seen_at, moved_annotation_id
                FROM annotation_reconciler.untracked_metadata WHERE resolved_at IS NULL ORDER BY metadata_key""")
    ).all()
    return [Untracked(*r) for r in rows]
