"""What ``annotation-reconciler status`` reports, read from the ledger in one transaction: counts by status and
dataset, the oldest quarantined row, held datasets, missing data files, operators' releases, resurrections and
blind prefixes, untracked metadata. Read only; the CLI renders it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from annotation_reconciler.ledger import blind_prefixes, exemptions, untracked
from annotation_reconciler.ledger.blind_prefixes import BlindPrefix
from annotation_reconciler.ledger.exemptions import Exemption
from annotation_reconciler.ledger.untracked import Untracked


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
    untracked: list[Untracked] = field(default_factory=list)  # metadata in S3 that no row points to


def read_status(conn: Connection) -> StatusReport:
    """The ledger's state as ``status`` reports it."""
    by_status: dict[str, int] = dict(
        conn.execute(text("SELECT status, count(*) FROM annotation_quarantine GROUP BY 1")).all()
    )
    by_dataset = conn.execute(
        text("SELECT dataset_id, status, count(*) FROM annotation_quarantine GROUP BY 1, 2 ORDER BY 1, 2")
    ).all()
    oldest = conn.execute(
        text(
            "SELECT annotation_id, s3_metadata_path, detected_at, purge_after "
            "FROM annotation_quarantine WHERE status = 'quarantined' "
            "ORDER BY detected_at LIMIT 1"
        )
    ).first()
    files = conn.execute(
        text(
            "SELECT annotation_id, count(*) FROM missing_annotation_file "
            "WHERE resolved_at IS NULL GROUP BY 1 ORDER BY 1"
        )
    ).all()
    released = exemptions.listed(conn)
    resurrected = conn.execute(
        text(
            "SELECT annotation_id, metadata_key, purged_at, found_at, found_by FROM annotation_resurrection "
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
    )
