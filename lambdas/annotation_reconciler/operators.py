"""The operator's actions on the ledger, each in its own transaction: approve a held dataset, release an
annotation (and clear that release), and read the status report. The CLI commands call these; they render.
"""

from __future__ import annotations

from sqlalchemy import Engine

from annotation_reconciler.ledger import exemptions, quarantines
from annotation_reconciler.ledger.status import StatusReport, read_status
from annotation_reconciler.reconcile import utcnow


def approve(engine: Engine, dataset_id: int, *, by: str) -> int:
    """Let the held rows of a dataset be purged at the next purge (S3 is still checked first); returns how many."""
    with engine.begin() as conn:
        return quarantines.approve_dataset(conn, dataset_id, now=utcnow(), by=by)


def release(engine: Engine, annotation_id: int, *, by: str) -> bool:
    """Close the annotation's open row as released by ``by`` and make it exempt; False if it has none."""
    with engine.begin() as conn:
        return exemptions.release_by_operator(conn, annotation_id, now=utcnow(), by=by)


def clear_release(engine: Engine, annotation_id: int, *, by: str) -> int:
    """End an operator's release by hand: the next scan or event judges the annotation again; 0 if none."""
    with engine.begin() as conn:
        return exemptions.clear(conn, annotation_id, now=utcnow(), by=by)


def status(engine: Engine) -> StatusReport:
    """The ledger's state, for ``annotation-reconciler status``."""
    with engine.connect() as conn:
        return read_status(conn)
