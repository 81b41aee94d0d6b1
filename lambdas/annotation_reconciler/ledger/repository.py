"""SQL over the ledger and the portal rows it points at: every call is one statement.

Functions take a Connection in the caller's transaction; none of them commits.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from annotation_reconciler.ledger.models import Source, Status
from annotation_reconciler.lifecycle import AnnotationRef, canonical
from annotation_reconciler.scope import Scope

_REF_COLUMNS = "a.id, a.s3_metadata_path, r.dataset_id, a.run_id"


def _refs(rows: Iterable[object]) -> list[AnnotationRef]:
    return [AnnotationRef(r.id, r.s3_metadata_path, r.dataset_id, r.run_id) for r in rows]  # type: ignore[attr-defined]


def annotations_by_paths(conn: Connection, stored_paths: Sequence[str]) -> list[AnnotationRef]:
    """Annotations whose s3_metadata_path is any of ``stored_paths`` (one indexed IN query)."""
    if not stored_paths:
        return []
    rows = conn.execute(
        text(
            f"SELECT {_REF_COLUMNS} FROM annotation a LEFT JOIN run r ON r.id = a.run_id "  # noqa: S608
            "WHERE a.s3_metadata_path = ANY(CAST(:paths AS text[]))"
        ),
        {"paths": list(stored_paths)},
    )
    return _refs(rows)


def annotations_in_scope(conn: Connection, scope: Scope) -> list[AnnotationRef]:
    """All annotations of a scope in one query. A voxel spacing also covers its legacy rows
    (NULL tomogram_voxel_spacing_id) whose files reference it."""
    rows = conn.execute(
        text(f"""
        SELECT {_REF_COLUMNS} FROM annotation a LEFT JOIN run r ON r.id = a.run_id
        WHERE (CAST(:dataset_id AS integer) IS NULL OR r.dataset_id = :dataset_id)
          AND (CAST(:run_ids AS integer[]) IS NULL OR a.run_id = ANY(CAST(:run_ids AS integer[])))
          AND (CAST(:vs AS integer) IS NULL OR a.tomogram_voxel_spacing_id = :vs
               OR (a.tomogram_voxel_spacing_id IS NULL AND EXISTS (
                   SELECT 1 FROM annotation_shape s JOIN annotation_file f ON f.annotation_shape_id = s.id
                   WHERE s.annotation_id = a.id AND f.tomogram_voxel_spacing_id = :vs)))
        ORDER BY a.id"""),  # noqa: S608
        {
            "dataset_id": scope.dataset_id,
            "run_ids": list(scope.run_ids) if scope.run_ids is not None else None,
            "vs": scope.voxel_spacing_id,
        },
    )
    return _refs(rows)


def quarantine(
    conn: Connection,
    items: Sequence[tuple[AnnotationRef, str | None]],
    *,
    source: Source,
    reason: str,
    now: datetime.datetime,
    grace: datetime.timedelta,
    status: Status = Status.QUARANTINED,
) -> list[int]:
    """Open a ledger row for each annotation that has none; returns the ids newly opened.

    Idempotent: an annotation already quarantined or held under the same stored path keeps its row (and its
    clock). One whose open row names another stored path (the metadata moved, the row was rewritten) is
    quarantined again under the new path and key, with a fresh grace period and no approval. One an
    operator released under this very stored path (exempt) is skipped.
    """
    if not items:
        return []
    rows = conn.execute(
        text("""
        INSERT INTO annotation_quarantine
          (annotation_id, dataset_id, run_id, s3_metadata_path, metadata_key, metadata_key_folded, source, reason,
           status, detected_at, purge_after)
        SELECT d.id, d.dataset_id, d.run_id, d.path, d.key, d.folded, :source, :reason, :status, :now, :purge_after
        FROM unnest(CAST(:ids AS integer[]), CAST(:datasets AS integer[]), CAST(:runs AS integer[]),
                    CAST(:paths AS text[]), CAST(:keys AS text[]), CAST(:folded AS text[]))
             AS d(id, dataset_id, run_id, path, key, folded)
        WHERE NOT EXISTS (SELECT 1 FROM annotation_quarantine x  -- an operator's release sticks (ledger/exemptions.py)
                          WHERE x.exempt AND x.annotation_id = d.id AND x.s3_metadata_path = d.path)
        ON CONFLICT (annotation_id) WHERE status IN ('quarantined', 'held') DO UPDATE
          SET s3_metadata_path = EXCLUDED.s3_metadata_path, metadata_key = EXCLUDED.metadata_key,
              metadata_key_folded = EXCLUDED.metadata_key_folded, source = EXCLUDED.source,
              reason = EXCLUDED.reason || ' (quarantined again under its new stored path)',
              detected_at = EXCLUDED.detected_at, purge_after = EXCLUDED.purge_after,
              approved_at = NULL, approved_by = NULL, claimed_until = NULL
          WHERE annotation_quarantine.s3_metadata_path <> EXCLUDED.s3_metadata_path
        RETURNING annotation_id"""),
        {
            "ids": [r.id for r, _ in items],
            "datasets": [r.dataset_id for r, _ in items],
            "runs": [r.run_id for r, _ in items],
            "paths": [r.stored_path for r, _ in items],
            "keys": [k for _, k in items],
            "folded": [canonical(k) if k is not None else None for _, k in items],
            "source": source.value,
            "reason": reason,
            "status": status.value,
            "now": now,
            "purge_after": now + grace,
        },
    ).scalars()
    return sorted(rows)


def release(conn: Connection, annotation_ids: Sequence[int], *, now: datetime.datetime, resolution: str) -> list[int]:
    """Close the open rows of these annotations as released; returns the ids released."""
    if not annotation_ids:
        return []
    rows = conn.execute(
        text("""UPDATE annotation_quarantine SET status = 'released', resolved_at = :now, resolution = :resolution
                WHERE annotation_id = ANY(CAST(:ids AS integer[])) AND status IN ('quarantined', 'held')
                RETURNING annotation_id"""),
        {"ids": list(annotation_ids), "now": now, "resolution": resolution},
    ).scalars()
    return sorted(rows)


def release_rows(conn: Connection, rows: Sequence[tuple[int, str]], *, now: datetime.datetime) -> list[int]:
    """Close open ledger rows as released, each with its own resolution: (ledger id, resolution).
    Returns the annotation ids released."""
    if not rows:
        return []
    released = conn.execute(
        text("""UPDATE annotation_quarantine q
                SET status = 'released', resolved_at = :now, resolution = r.resolution, claimed_until = NULL
                FROM unnest(CAST(:ids AS bigint[]), CAST(:resolutions AS text[])) AS r(id, resolution)
                WHERE q.id = r.id AND q.status IN ('quarantined', 'held')
                RETURNING q.annotation_id"""),
        {"ids": [r[0] for r in rows], "resolutions": [r[1] for r in rows], "now": now},
    ).scalars()
    return sorted(released)


def hold(conn: Connection, rows: Sequence[tuple[int, str]]) -> int:
    """Hold quarantined ledger rows for an operator, each with its reason: (ledger id, reason)."""
    if not rows:
        return 0
    return conn.execute(
        text("""UPDATE annotation_quarantine q SET status = 'held', resolution = h.reason, claimed_until = NULL
                FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) AS h(id, reason)
                WHERE q.id = h.id AND q.status = 'quarantined'"""),
        {"ids": [r[0] for r in rows], "reasons": [r[1] for r in rows]},
    ).rowcount


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
        text("""UPDATE annotation_quarantine q SET claimed_until = :until
                FROM (SELECT id FROM annotation_quarantine
                      WHERE status = 'quarantined' AND purge_after <= :now
                        AND (claimed_until IS NULL OR claimed_until <= :now)
                        AND id <> ALL(CAST(:exclude AS bigint[]))
                      ORDER BY purge_after, id
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
                FROM annotation_quarantine
                WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'quarantined'
                ORDER BY id FOR UPDATE"""),
        {"ids": [c.quarantine_id for c in claims]},
    ).all()
    return [Claim(r.id, r.annotation_id, r.dataset_id, r.s3_metadata_path, r.metadata_key, r.approved) for r in rows]


def end_claims(conn: Connection, quarantine_ids: Sequence[int]) -> None:
    """Drop the lease of rows the purge left quarantined (unknown, dry run): the next purge takes them."""
    if quarantine_ids:
        conn.execute(
            text("UPDATE annotation_quarantine SET claimed_until = NULL WHERE id = ANY(CAST(:ids AS bigint[]))"),
            {"ids": list(quarantine_ids)},
        )


def annotations_by_ids(conn: Connection, annotation_ids: Sequence[int]) -> dict[int, AnnotationRef]:
    """The current rows of these annotations (absent ones are missing from the answer)."""
    if not annotation_ids:
        return {}
    rows = conn.execute(
        text(
            f"SELECT {_REF_COLUMNS} FROM annotation a LEFT JOIN run r ON r.id = a.run_id "  # noqa: S608
            "WHERE a.id = ANY(CAST(:ids AS integer[]))"
        ),
        {"ids": list(annotation_ids)},
    )
    return {ref.id: ref for ref in _refs(rows)}


def guard_counts(
    conn: Connection, dataset_ids: Sequence[int | None], *, except_annotations: Sequence[int] = ()
) -> tuple[dict[int | None, int], dict[int | None, int]]:
    """For the mass-deletion guard, in one statement (one snapshot, so a concurrent purge cannot be seen
    half done): open ledger rows per dataset other than those of ``except_annotations``, and annotations
    per dataset."""
    rows = conn.execute(
        text("""WITH ds AS (SELECT unnest(CAST(:ids AS integer[])) AS id)
                SELECT ds.id,
                       (SELECT count(*) FROM annotation_quarantine q
                        WHERE q.dataset_id = ds.id AND q.status IN ('quarantined', 'held')
                          AND q.annotation_id <> ALL(CAST(:skip AS integer[]))) AS open_rows,
                       (SELECT count(*) FROM annotation a JOIN run r ON r.id = a.run_id
                        WHERE r.dataset_id = ds.id) AS total
                FROM ds"""),
        {"ids": sorted({d for d in dataset_ids if d is not None}), "skip": list(except_annotations)},
    ).all()
    return {r[0]: r[1] for r in rows if r[1]}, {r[0]: r[2] for r in rows if r[2]}


def approve_dataset(conn: Connection, dataset_id: int, *, now: datetime.datetime, by: str) -> int:
    """Let the held rows of a dataset be purged (due now, guard bypassed); returns how many."""
    return conn.execute(
        text("""UPDATE annotation_quarantine
                SET status = 'quarantined', approved_at = :now, approved_by = :by, purge_after = :now,
                    resolution = NULL
                WHERE dataset_id = :dataset_id AND status = 'held'"""),
        {"dataset_id": dataset_id, "now": now, "by": by},
    ).rowcount


def files_by_paths(conn: Connection, stored_paths: Sequence[str]) -> list[tuple[int, int | None, str]]:
    """Annotation files whose s3_path is any of ``stored_paths``: (file id, annotation id, s3_path)."""
    if not stored_paths:
        return []
    rows = conn.execute(
        text("""SELECT f.id, s.annotation_id, f.s3_path FROM annotation_file f
                LEFT JOIN annotation_shape s ON s.id = f.annotation_shape_id
                WHERE f.s3_path = ANY(CAST(:paths AS text[]))"""),
        {"paths": list(stored_paths)},
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def record_missing_files(
    conn: Connection, files: Sequence[tuple[int, int | None, str, str]], *, now: datetime.datetime
) -> int:
    """Open a missing-file report per (file id, annotation id, s3_path, removed key), or add the removed key to
    the file's open report (another chunk of one zarr); idempotent. Returns how many reports were opened."""
    if not files:
        return 0
    rows = conn.execute(
        text("""INSERT INTO missing_annotation_file
                  (annotation_file_id, annotation_id, s3_path, removed_key, removed_keys, detected_at)
                SELECT fid, aid, path, min(key), array_agg(DISTINCT key ORDER BY key), :now
                FROM unnest(CAST(:fids AS integer[]), CAST(:aids AS integer[]),
                            CAST(:paths AS text[]), CAST(:keys AS text[])) AS f(fid, aid, path, key)
                GROUP BY fid, aid, path
                ON CONFLICT (annotation_file_id) WHERE resolved_at IS NULL DO UPDATE
                  SET removed_keys = ARRAY(SELECT DISTINCT k FROM unnest(missing_annotation_file.removed_keys
                                                                         || EXCLUDED.removed_keys) AS k ORDER BY k)
                  WHERE NOT EXCLUDED.removed_keys <@ missing_annotation_file.removed_keys
                RETURNING xmax = 0 AS opened"""),
        {
            "fids": [f[0] for f in files],
            "aids": [f[1] for f in files],
            "paths": [f[2] for f in files],
            "keys": [f[3] for f in files],
            "now": now,
        },
    ).scalars()
    return sum(1 for opened in rows if opened)


def resolve_missing_keys(conn: Connection, keys: Sequence[str], *, now: datetime.datetime) -> int:
    """These removed keys are back: take them off the open reports, and close each report none of whose
    removed keys is still missing. Returns how many reports closed."""
    if not keys:
        return 0
    rows = conn.execute(
        text("""UPDATE missing_annotation_file m
                SET removed_keys = ARRAY(SELECT k FROM unnest(m.removed_keys) AS k
                                         WHERE k <> ALL(CAST(:keys AS text[])) ORDER BY k),
                    resolved_at = CASE WHEN m.removed_keys <@ CAST(:keys AS text[]) THEN CAST(:now AS timestamptz) END
                WHERE m.resolved_at IS NULL AND m.removed_keys && CAST(:keys AS text[])
                RETURNING m.resolved_at IS NOT NULL AS closed"""),
        {"keys": sorted(set(keys)), "now": now},
    ).scalars()
    return sum(1 for closed in rows if closed)


def record_resurrections(
    conn: Connection, keys: Sequence[str], *, now: datetime.datetime, since: datetime.datetime, found_by: str
) -> list[tuple[int, str]]:
    """Record, once each, the annotations purged since ``since`` whose metadata key is among ``keys`` in any
    spelling (found in S3 again). Returns (annotation id, purged key) of those newly recorded."""
    if not keys:
        return []
    rows = conn.execute(
        text("""INSERT INTO annotation_resurrection
                  (quarantine_id, annotation_id, dataset_id, metadata_key, purged_at, found_at, found_by)
                SELECT q.id, q.annotation_id, q.dataset_id, q.metadata_key, q.resolved_at, :now, :found_by
                FROM annotation_quarantine q
                WHERE q.status = 'purged' AND q.metadata_key_folded = ANY(CAST(:folded AS text[]))
                  AND q.resolved_at >= :since
                ON CONFLICT (quarantine_id) DO NOTHING
                RETURNING annotation_id, metadata_key"""),
        {"folded": sorted({canonical(k) for k in keys}), "now": now, "since": since, "found_by": found_by},
    ).all()
    return sorted((r[0], r[1]) for r in rows)


def purged_keys_in_scope(conn: Connection, scope: Scope, *, since: datetime.datetime) -> list[str]:
    """Metadata keys of the scope's annotations purged since ``since`` (a scan looks for them too)."""
    rows = conn.execute(
        text("""SELECT DISTINCT metadata_key FROM annotation_quarantine
                WHERE status = 'purged' AND metadata_key IS NOT NULL AND resolved_at >= :since
                  AND (CAST(:dataset_id AS integer) IS NULL OR dataset_id = :dataset_id)
                  AND (CAST(:run_ids AS integer[]) IS NULL OR run_id = ANY(CAST(:run_ids AS integer[])))
                ORDER BY 1"""),
        {
            "since": since,
            "dataset_id": scope.dataset_id,
            "run_ids": list(scope.run_ids) if scope.run_ids is not None else None,
        },
    ).scalars()
    return list(rows)
