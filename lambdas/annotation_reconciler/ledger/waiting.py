"""What waits in the ledger, and why: the gauges the schedule emits every period, and each waiting row with its
reason and the command that moves it on (``status``). Read only; one statement per call.

A row waits when it is

- **held**: the mass-deletion guard (or an empty listing) stopped it; an operator approves or releases it;
- **failed**: the purge could not delete it even alone (a foreign key, a trigger, a grant); it keeps the error;
- **unknown**: the purge's re-check could not decide it (S3 could not say, a twin spelling, the page limit);
- **overdue**: quarantined longer than its grace period plus one period, whatever the reason;

and a prefix is **blind** while S3 will not list it (errors after retries, or more pages than the limit).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import Connection, text

from annotation_reconciler.ledger import blind_prefixes
from annotation_reconciler.ledger.blind_prefixes import BlindPrefix
from annotation_reconciler.names import Env, Metric
from annotation_reconciler.rules.plural import count

#: One reconciliation period (the reconcile schedule runs daily): a row quarantined longer than its grace period
#: plus this has missed at least one purge that should have settled it.
PERIOD = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Gauges:
    """How many rows wait now, by kind (a row may count in several: failed and overdue)."""

    held: int
    failed: int
    unknown: int
    overdue: int
    blind: int

    def metrics(self) -> dict[str, int]:
        """The metric names the stack alarms on."""
        return {
            Metric.HELD_WAITING: self.held,
            Metric.PURGE_ROWS_FAILED: self.failed,
            Metric.UNKNOWN_WAITING: self.unknown,
            Metric.QUARANTINE_OVERDUE: self.overdue,
            Metric.BLIND_PREFIXES: self.blind,
        }


def gauges(conn: Connection, *, now: datetime.datetime, period: datetime.timedelta = PERIOD) -> Gauges:
    row = conn.execute(
        text("""SELECT count(*) FILTER (WHERE status = 'held'),
                       count(*) FILTER (WHERE status = 'quarantined' AND purge_error IS NOT NULL),
                       count(*) FILTER (WHERE status = 'quarantined' AND unknown_reason IS NOT NULL),
                       count(*) FILTER (WHERE status = 'quarantined' AND purge_after < :cutoff),
                       (SELECT count(*) FROM annotation_reconciler.blind_prefix WHERE resolved_at IS NULL)
                FROM annotation_reconciler.annotation_quarantine
                WHERE status IN ('quarantined', 'held')"""),
        {"cutoff": now - period},
    ).one()
    return Gauges(*(int(v) for v in row))


@dataclass(frozen=True)
class Waiting:
    """One waiting row, explained."""

    kind: str  # held, failed, unknown, overdue
    annotation_id: int
    dataset_id: int | None
    key: str
    reason: str
    next_command: str
    since: datetime.datetime
    overdue: bool


def explain(
    *,
    annotation_id: int,
    dataset_id: int | None,
    key: str,
    status: str,
    resolution: str | None,
    purge_error: str | None,
    purge_failures: int,
    unknown_reason: str | None,
    detected_at: datetime.datetime,
    purge_after: datetime.datetime,
    now: datetime.datetime,
    period: datetime.timedelta = PERIOD,
) -> Waiting:
    """Why a row waits and what moves it on. Pure::

    >>> t = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    >>> w = explain(annotation_id=7, dataset_id=3, key="3/r/a.json", status="held", resolution="guard",
    ...             purge_error=None, purge_failures=0, unknown_reason=None, detected_at=t, purge_after=t, now=t)
    >>> w.kind, w.next_command
    ('held', 'annotation-reconciler approve --dataset-id 3  (or: release --annotation-id 7)')
    """
    overdue = status == "quarantined" and purge_after < now - period
    release = f"release --annotation-id {annotation_id}"
    if status == "held":
        dataset = "N" if dataset_id is None else str(dataset_id)
        return Waiting(
            "held",
            annotation_id,
            dataset_id,
            key,
            resolution or "held for an operator",
            f"annotation-reconciler approve --dataset-id {dataset}  (or: {release})",
            detected_at,
            overdue,
        )
    if purge_error:
        return Waiting(
            "failed",
            annotation_id,
            dataset_id,
            key,
            f"the purge could not delete it ({count(purge_failures, 'time')}): {purge_error}",
            f"remove what refuses the deletion, then the next purge deletes it (or: annotation-reconciler {release})",
            detected_at,
            overdue,
        )
    scan = (
        f"annotation-reconciler scan --dataset-id {dataset_id}"
        if dataset_id is not None
        else "annotation-reconciler scan"
    )
    if unknown_reason:
        return Waiting(
            "unknown",
            annotation_id,
            dataset_id,
            key,
            f"the purge's re-check could not decide: {unknown_reason}",
            f"{scan} once S3 can answer for the key (or: annotation-reconciler {release})",
            detected_at,
            overdue,
        )
    return Waiting(
        "overdue",
        annotation_id,
        dataset_id,
        key,
        f"quarantined since {detected_at.isoformat()}, due since {purge_after.isoformat()}, and no purge has "
        "settled it: look at the schedule's errors",
        "annotation-reconciler purge --no-dry-run",
        detected_at,
        overdue,
    )


def waiting_rows(conn: Connection, *, now: datetime.datetime, period: datetime.timedelta = PERIOD) -> list[Waiting]:
    """Every open row that waits (held, failed, unknown or overdue), by dataset and annotation."""
    rows = conn.execute(
        text("""SELECT annotation_id, dataset_id, COALESCE(metadata_key, s3_metadata_path) AS key, status, resolution,
                       purge_error, purge_failures, unknown_reason, detected_at, purge_after
                FROM annotation_reconciler.annotation_quarantine
                WHERE status = 'held'
                   OR (status = 'quarantined'
                       AND (purge_error IS NOT NULL OR unknown_reason IS NOT NULL OR purge_after < :cutoff))
                ORDER BY dataset_id NULLS LAST, annotation_id"""),
        {"cutoff": now - period},
    ).all()
    return [explain(**r._asdict(), now=now, period=period) for r in rows]


def due(conn: Connection, *, now: datetime.datetime) -> int:
    """How many quarantined rows are past their grace period: what a purge now would claim (its progress bar's
    length; rows another purge holds are counted too)."""
    return int(
        conn.execute(
            text("""SELECT count(*) FROM annotation_reconciler.annotation_quarantine
                    WHERE status = 'quarantined' AND purge_after <= :now"""),
            {"now": now},
        ).scalar_one()
    )


def blind(conn: Connection) -> list[BlindPrefix]:
    return blind_prefixes.open_rows(conn)


def blind_command(prefix: BlindPrefix) -> str:
    """What answers a blind prefix."""
    if Env.SCAN_PAGE_LIMIT in prefix.last_error:
        return f"raise {Env.SCAN_PAGE_LIMIT}, then: annotation-reconciler scan" + (
            f" --dataset-id {prefix.dataset_id}" if prefix.dataset_id is not None else ""
        )
    return "annotation-reconciler scan" + (
        f" --dataset-id {prefix.dataset_id}" if prefix.dataset_id is not None else ""
    )
