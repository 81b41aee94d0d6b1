"""The operator's decisions, each in its own transaction and each naming who decided: approve a held dataset,
release an annotation for good (and end such a release), and read the status report.

They need the database only (the CLI runs them without a bucket's settings), so they take the engine where the
operations on S3 take a ``Context``; ``Reconciler`` calls them on its own clock.
"""

from __future__ import annotations

import datetime

from sqlalchemy import Engine

from annotation_reconciler.ledger import exemptions, quarantines
from annotation_reconciler.ledger.status import StatusReport, read_status
from annotation_reconciler.rules.ordering import utcnow


def approve(engine: Engine, dataset_id: int, *, by: str, now: datetime.datetime | None = None) -> int:
    """Let the held rows of a dataset be purged at the next purge (S3 is still checked first); returns how many."""
    with engine.begin() as conn:
        return quarantines.approve_dataset(conn, dataset_id, now=now or utcnow(), by=by)


def release(
    engine: Engine, annotation_id: int, *, by: str, now: datetime.datetime | None = None
) -> exemptions.Released:
    """Close the annotation's open row as released by ``by`` and make it exempt from a new quarantine until its
    metadata or stored path changes. A repeated release keeps the first (``Released.ALREADY``); without an open
    row or a release, ``Released.NOTHING`` (falsy) and nothing is written."""
    with engine.begin() as conn:
        return exemptions.release_by_operator(conn, annotation_id, now=now or utcnow(), by=by)


def exemption(engine: Engine, annotation_id: int) -> exemptions.Exemption | None:
    """The operator's release that keeps an annotation exempt, if any."""
    with engine.connect() as conn:
        return exemptions.exemption_of(conn, annotation_id)


def clear_release(engine: Engine, annotation_id: int, *, by: str, now: datetime.datetime | None = None) -> int:
    """End an operator's release by hand: the next scan or event judges the annotation again; 0 if none."""
    with engine.begin() as conn:
        return exemptions.clear(conn, annotation_id, now=now or utcnow(), by=by)


def status(engine: Engine, *, now: datetime.datetime | None = None, dataset_id: int | None = None) -> StatusReport:
    """The ledger's state (of one dataset if ``dataset_id``), for ``annotation-reconciler status``."""
    with engine.connect() as conn:
        return read_status(conn, now=now, dataset_id=dataset_id)
