"""What ``annotation-reconciler status`` reports, read from the ledger in one transaction: counts by status and
dataset, the oldest quarantined row, held datasets, missing data files, operators' releases, resurrections and
blind prefixes, untracked metadata. Read only; the CLI renders it.
"""

from __future__ import annotations

import datetime
import shlex
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from annotation_reconciler.core import utcnow
from annotation_reconciler.ledger import blind_prefixes, exemptions, integrity, untracked, waiting
from annotation_reconciler.ledger.blind_prefixes import BlindPrefix
from annotation_reconciler.ledger.exemptions import Exemption
from annotation_reconciler.ledger.untracked import Untracked
from annotation_reconciler.ledger.waiting import Gauges, Waiting


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


def read_status(conn: Connection, *, now: datetime.datetime | None = None) -> StatusReport:
    """The ledger's state as ``status`` reports it; refused while the ledger's schemas hold a foreign object (a
    planted policy or rule could run as whoever reads)."""
    integrity.require_clean(conn, "read the ledger's status")
    now = now or utcnow()
    by_status: dict[str, int] = dict(
        conn.execute(text("SELECT status, count(*) FROM annotation_reconciler.annotation_quarantine GROUP BY 1")).all()
    )
    by_dataset = conn.execute(
        text(
            "SELECT dataset_id, status, count(*) FROM annotation_reconciler.annotation_quarantine GROUP "
            "BY 1, 2 ORDER BY 1, 2"
        )
    ).all()
    oldest = conn.execute(
        text(
            "SELECT annotation_id, s3_metadata_path, detected_at, purge_after "
            "FROM annotation_reconciler.annotation_quarantine WHERE status = 'quarantined' "
            "ORDER BY detected_at LIMIT 1"
        )
    ).first()
    files = conn.execute(
        text(
            "SELECT annotation_id, count(*) FROM annotation_reconciler.missing_annotation_file "
            "WHERE resolved_at IS NULL GROUP BY 1 ORDER BY 1"
        )
    ).all()
    released = exemptions.listed(conn)
    resurrected = conn.execute(
        text(
            "SELECT annotation_id, metadata_key, purged_at, found_at, found_by FROM "
            "annotation_reconciler.annotation_resurrection "
            "WHERE resolved_at IS NULL ORDER BY found_at, annotation_id"
        )
    ).all()
    return StatusReport(
        by_status=by_status,
        by_dataset=[(d, s, c) for d, s, c in by_dataset],
        oldest_quarantined=None if oldest is None else OldestQuarantined(*oldest),
        held_datasets=[(d, c) for d, s, c in by_dataset if s == "held"],  # derived: one query less
        missing_files=[(a, c) for a, c in files],
        released=released,
        resurrected=[Resurrected(*r) for r in resurrected],
        blind=blind_prefixes.open_rows(conn),
        untracked=untracked.open_rows(conn),
        waiting=waiting.waiting_rows(conn, now=now),
        gauges=waiting.gauges(conn, now=now),
        now=now,
    )


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value else None


def as_json(found: StatusReport) -> dict[str, Any]:
    """The whole report as JSON-able data: what ``status --output json`` prints and the schedule Lambda's
    ``{"action": "status"}`` returns (nothing capped)."""
    oldest = found.oldest_quarantined
    return {
        "at": found.now.isoformat(),
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
        "released_by_operator": [
            {
                "annotation_id": e.annotation_id,
                "dataset_id": e.dataset_id,
                "s3_metadata_path": e.s3_metadata_path,
                "by": e.released_by,
                "at": _iso(e.released_at),
            }
            for e in found.released
        ],
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
        f"annotation-reconciler ingest --bucket $RECONCILER_BUCKET --dataset-id {dataset} "
        f"--run-name {shlex.quote(run)} --voxel-spacing {spacing}"
    )
