"""What ``annotation-reconciler status`` reports, read from the ledger in one transaction: counts by status and
dataset, the oldest quarantined row, the annotations to act on (quarantined, held, unknown, exempt: each with its
id, key, since and reason), held datasets, missing data files, operators' releases and restores, resurrections and
blind prefixes, untracked metadata; all of it, or one dataset's. Read only; the CLI renders it.
"""

from __future__ import annotations

import datetime
import shlex
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from annotation_reconciler.ledger import blind_prefixes, exemptions, integrity, untracked, waiting
from annotation_reconciler.ledger.blind_prefixes import BlindPrefix
from annotation_reconciler.ledger.exemptions import Exemption
from annotation_reconciler.ledger.untracked import Untracked
from annotation_reconciler.ledger.waiting import Gauges, Waiting
from annotation_reconciler.names import Env
from annotation_reconciler.rules.ordering import utcnow


@dataclass(frozen=True)
class OldestQuarantined:
    annotation_id: int
    s3_metadata_path: str
    detected_at: datetime.datetime
    purge_after: datetime.datetime


@dataclass(frozen=True)
class Resurrected:
    """An open resurrection: a purged annotation whose metadata key is in S3 again."""

    annotation_id: int
    metadata_key: str
    purged_at: datetime.datetime
    found_at: datetime.datetime
    found_by: str


#: The kinds of annotation ``status`` lists, in its order: each open or exempt ledger row is of exactly one.
LISTED_KINDS = ("quarantined", "unknown", "held", "exempt")


@dataclass(frozen=True)
class Listed:
    """An annotation to act on: its id, key, since when it is in its kind, and why."""

    kind: str  # one of LISTED_KINDS
    annotation_id: int
    dataset_id: int | None
    key: str
    since: datetime.datetime
    reason: str


def listed_kind(
    *,
    annotation_id: int,
    dataset_id: int | None,
    key: str,
    status: str,
    exempt: bool,
    reason: str,
    resolution: str | None,
    resolved_by: str | None,
    unknown_reason: str | None,
    detected_at: datetime.datetime,
    resolved_at: datetime.datetime | None,
    restored_at: datetime.datetime | None,
) -> Listed:
    """The kind of a ledger row as ``status`` lists it. Pure::

    >>> t = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    >>> row = dict(annotation_id=7, dataset_id=3, key="3/r/a.json", status="restored", exempt=True, reason="gone",
    ...            resolution=None, resolved_by="ann", unknown_reason=None, detected_at=t, resolved_at=t,
    ...            restored_at=t)
    >>> listed_kind(**row).kind, listed_kind(**row).reason
    ('exempt', 'restored by ann: exempt until its metadata or stored path changes')
    >>> listed_kind(**{**row, "status": "quarantined", "exempt": False, "unknown_reason": "503"}).reason
    "the purge's re-check could not decide: 503"
    """
    args = (annotation_id, dataset_id, key)
    if status == "held":
        return Listed("held", *args, detected_at, resolution or reason)
    if status == "quarantined":
        if unknown_reason:
            return Listed("unknown", *args, detected_at, f"the purge's re-check could not decide: {unknown_reason}")
        return Listed("quarantined", *args, detected_at, reason)
    if status == "restored":
        who = resolved_by or "an operator"
        reason = f"restored by {who}: exempt until its metadata or stored path changes"
        return Listed("exempt", *args, restored_at or resolved_at or detected_at, reason)
    return Listed("exempt", *args, resolved_at or detected_at, resolution or "released by an operator")


def listed_rows(conn: Connection, dataset_id: int | None = None) -> list[Listed]:
    """Every open row (quarantined, held) and every exempt one (released or restored by an operator), of
    ``dataset_id`` if given, by kind, dataset and annotation."""
    rows = conn.execute(
        text("""SELECT annotation_id, dataset_id, COALESCE(metadata_key, s3_metadata_path) AS key, status, exempt,
                       reason, resolution, resolved_by, unknown_reason, detected_at, resolved_at, restored_at
                FROM annotation_reconciler.annotation_quarantine
                WHERE (status IN ('quarantined', 'held') OR exempt)
                  AND (CAST(:d AS integer) IS NULL OR dataset_id = :d)
                ORDER BY dataset_id NULLS LAST, annotation_id"""),
        {"d": dataset_id},
    ).all()
    found = [listed_kind(**r._asdict()) for r in rows]
    return sorted(found, key=lambda x: LISTED_KINDS.index(x.kind))  # stable: by dataset and id within a kind


@dataclass(frozen=True)
class StatusReport:
    by_status: dict[str, int]
    by_dataset: list[tuple[int | None, str, int]]  # (dataset id, status, rows)
    oldest_quarantined: OldestQuarantined | None
    held_datasets: list[tuple[int | None, int]]  # (dataset id, held rows)
    missing_files: list[tuple[int | None, int]]  # (annotation id, open missing-file reports)
    released: list[Exemption]
    resurrected: list[Resurrected]
    blind: list[BlindPrefix]
    waiting: list[Waiting]
    gauges: Gauges
    now: datetime.datetime
    untracked: list[Untracked] = field(default_factory=list)  # metadata in S3 that no row points to
    listed: list[Listed] = field(default_factory=list)  # the annotations to act on, by kind
    dataset_id: int | None = None  # the one dataset reported, if any


def read_status(
    conn: Connection, *, now: datetime.datetime | None = None, dataset_id: int | None = None
) -> StatusReport:
    """The ledger's state as ``status`` reports it (of one dataset if ``dataset_id``; the gauges are always the
    whole ledger's, as the alarms see it); refused while the ledger's schemas hold a foreign object (a planted
    policy or rule could run as whoever reads)."""
    integrity.require_clean(conn, "read the ledger's status")
    now = now or utcnow()
    one = {"d": dataset_id}
    by_dataset = conn.execute(
        text(
            "SELECT dataset_id, status, count(*) FROM annotation_reconciler.annotation_quarantine "
            "WHERE CAST(:d AS integer) IS NULL OR dataset_id = :d GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        one,
    ).all()
    by_status: dict[str, int] = {}
    for _, state, rows in by_dataset:
        by_status[state] = by_status.get(state, 0) + rows
    oldest = conn.execute(
        text(
            "SELECT annotation_id, s3_metadata_path, detected_at, purge_after "
            "FROM annotation_reconciler.annotation_quarantine WHERE status = 'quarantined' "
            "AND (CAST(:d AS integer) IS NULL OR dataset_id = :d) ORDER BY detected_at LIMIT 1"
        ),
        one,
    ).first()
    files = conn.execute(
        text(
            "SELECT f.annotation_id, count(*) FROM annotation_reconciler.missing_annotation_file f "
            "WHERE f.resolved_at IS NULL AND (CAST(:d AS integer) IS NULL OR f.annotation_id IN "
            "(SELECT a.id FROM public.annotation a JOIN public.run r ON r.id = a.run_id WHERE r.dataset_id = :d)) "
            "GROUP BY 1 ORDER BY 1"
        ),
        one,
    ).all()
    resurrected = conn.execute(
        text(
            "SELECT r.annotation_id, r.metadata_key, r.purged_at, r.found_at, r.found_by FROM "
            "annotation_reconciler.annotation_resurrection r "
            "WHERE r.resolved_at IS NULL AND (CAST(:d AS integer) IS NULL OR r.quarantine_id IN "
            "(SELECT q.id FROM annotation_reconciler.annotation_quarantine q WHERE q.dataset_id = :d)) "
            "ORDER BY r.found_at, r.annotation_id"
        ),
        one,
    ).all()

    def ours(found_in: int | None) -> bool:
        return dataset_id is None or found_in == dataset_id

    return StatusReport(
        by_status=by_status,
        by_dataset=[(d, s, c) for d, s, c in by_dataset],
        oldest_quarantined=None if oldest is None else OldestQuarantined(*oldest),
        held_datasets=[(d, c) for d, s, c in by_dataset if s == "held"],  # derived: one query less
        missing_files=[(a, c) for a, c in files],
        released=exemptions.listed(conn, dataset_id),
        resurrected=[Resurrected(*r) for r in resurrected],
        blind=[b for b in blind_prefixes.open_rows(conn) if ours(b.dataset_id)],
        untracked=[u for u in untracked.open_rows(conn) if ours(u.dataset_id)],
        waiting=[w for w in waiting.waiting_rows(conn, now=now) if ours(w.dataset_id)],
        gauges=waiting.gauges(conn, now=now),
        now=now,
        listed=listed_rows(conn, dataset_id),
        dataset_id=dataset_id,
    )


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value else None


def as_json(found: StatusReport) -> dict[str, Any]:
    """The whole report as JSON-able data: what ``status --output json`` prints and the schedule Lambda's
    ``{"action": "status"}`` returns (nothing capped)."""
    oldest = found.oldest_quarantined
    return {
        "at": found.now.isoformat(),
        "dataset_id": found.dataset_id,
        "by_status": found.by_status,
        "by_dataset": [{"dataset_id": d, "status": s, "count": c} for d, s, c in found.by_dataset],
        "oldest_quarantined": None
        if oldest is None
        else {
            "annotation_id": oldest.annotation_id,
            "s3_metadata_path": oldest.s3_metadata_path,
            "detected_at": oldest.detected_at.isoformat(),
            "purge_after": oldest.purge_after.isoformat(),
        },
        "held_datasets": {str(d): c for d, c in found.held_datasets},
        "annotations_with_missing_files": {str(a): c for a, c in found.missing_files},
        "annotations": [
            {
                "kind": a.kind,
                "annotation_id": a.annotation_id,
                "dataset_id": a.dataset_id,
                "key": a.key,
                "since": a.since.isoformat(),
                "reason": a.reason,
            }
            for a in found.listed
        ],
        **{
            f"{state}_by_operator": [
                {
                    "annotation_id": e.annotation_id,
                    "dataset_id": e.dataset_id,
                    "s3_metadata_path": e.s3_metadata_path,
                    "by": e.released_by,
                    "at": _iso(e.released_at),
                }
                for e in found.released
                if e.status == state
            ]
            for state in ("released", "restored")
        },
        "resurrected": [
            {
                "annotation_id": r.annotation_id,
                "metadata_key": r.metadata_key,
                "purged_at": r.purged_at.isoformat(),
                "found_at": r.found_at.isoformat(),
                "found_by": r.found_by,
                "reingest": reingest_command(r.metadata_key),
            }
            for r in found.resurrected
        ],
        "blind_prefixes": [
            {
                "prefix": b.prefix,
                "dataset_id": b.dataset_id,
                "since": b.first_failed_at.isoformat(),
                "last_failed_at": b.last_failed_at.isoformat(),
                "days": b.failures,
                "last_error": b.last_error,
                "next_command": waiting.blind_command(b),
            }
            for b in found.blind
        ],
        "untracked_metadata": [
            {
                "metadata_key": u.metadata_key,
                "dataset_id": u.dataset_id,
                "first_seen_at": u.first_seen_at.isoformat(),
                "last_seen_at": u.last_seen_at.isoformat(),
                "moved_annotation_id": u.moved_annotation_id,
                "ingest": reingest_command(u.metadata_key),
            }
            for u in found.untracked
        ],
        "waiting": [
            {
                "kind": w.kind,
                "annotation_id": w.annotation_id,
                "dataset_id": w.dataset_id,
                "key": w.key,
                "reason": w.reason,
                "next_command": w.next_command,
                "since": w.since.isoformat(),
                "overdue": w.overdue,
            }
            for w in found.waiting
        ],
        "gauges": found.gauges.metrics(),
    }


def reingest_command(metadata_key: str) -> str:
    """The ``annotation-reconciler ingest`` command that brings back the annotation of a metadata key."""
    parts = metadata_key.split("/")
    if len(parts) < 5 or parts[2] != "Reconstructions" or not parts[3].startswith("VoxelSpacing"):
        return f"annotation-reconciler ingest --bucket BUCKET  # for {metadata_key}"
    dataset, run, spacing = parts[0], parts[1], parts[3][len("VoxelSpacing") :]
    return (
        f"annotation-reconciler ingest --bucket ${Env.BUCKET} --dataset-id {dataset} "
        f"--run-name {shlex.quote(run)} --voxel-spacing {spacing}"
    )
