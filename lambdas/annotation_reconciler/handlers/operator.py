"""The operator's commands through the schedule function, for a machine with IAM rights and no route into the
private VPC (``aws lambda invoke`` or ``annotation-reconciler --via-lambda FUNCTION …``; CloudTrail records the
caller, the ledger records ``by``)::

    {"action": "status"}
    {"action": "approve", "dataset_id": 10001, "by": "alice"}
    {"action": "release", "annotation_id": 42, "by": "alice"}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from annotation_reconciler.handlers.common import logger
from annotation_reconciler.ledger import history
from annotation_reconciler.ledger import status as ledger_status
from annotation_reconciler.names import Action
from annotation_reconciler.service import operators
from annotation_reconciler.service.runtime import Runtime

OPERATOR_ACTIONS = (Action.STATUS, Action.APPROVE, Action.RELEASE)
#: Lambda returns at most 6 MB: a status answer larger than this keeps the first waiting rows and says so.
MAX_ANSWER_BYTES = 5_000_000


def fit_answer(report: dict[str, Any], limit: int = MAX_ANSWER_BYTES) -> dict[str, Any]:
    """The status report, its row lists (waiting rows, annotations to act on) cut alike (with ``waiting_total``,
    ``annotations_total`` and a note) if it would not fit in a Lambda response; the gauges and every count stay
    whole."""
    size = len(json.dumps(report, default=str).encode())
    lists = [name for name in ("waiting", "annotations") if report.get(name)]
    if size <= limit or not lists:
        return report
    fitted = dict(report)
    cut = 0
    for name in lists:
        rows = report[name]
        keep = max(0, int(len(rows) * limit / size * 0.9))
        fitted[name], fitted[f"{name}_total"] = rows[:keep], len(rows)
        cut += len(rows) - keep
    fitted["note"] = (
        f"{cut} more rows than a Lambda answer holds: run `status --output json` where the database is reachable, "
        "or approve/release the first ones and ask again"
    )
    return fitted


def _whole(event: Mapping[str, Any], name: str) -> int:
    value = event.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"the {event.get('action')!r} action needs {name!r}, a whole number, got {value!r}")
    return value


def _by(event: Mapping[str, Any]) -> str:
    by = event.get("by")
    if not isinstance(by, str) or not by.strip() or len(by) > 200:
        raise ValueError(f"the {event.get('action')!r} action needs 'by', the operator's name, got {by!r}")
    return by.strip()


def _known_dataset(rt: Runtime, dataset_id: int) -> int:
    """``dataset_id``, if the portal or the ledger knows it; an id that matches nothing is refused (as by the CLI)."""
    with rt.engine.connect() as conn:
        if not history.dataset_known(conn, dataset_id):
            raise ValueError(
                f"no dataset {dataset_id} in the portal or the reconciler's ledger: check the id "
                "(the status action without dataset_id reports every dataset)"
            )
    return dataset_id


def operator_action(rt: Runtime, action: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """Carry out one operator command on the reconciler's clock; its answer is the function's result."""
    now = rt.reconciler.clock()
    if action == Action.STATUS:
        one = None if event.get("dataset_id") is None else _known_dataset(rt, _whole(event, "dataset_id"))
        report = operators.status(rt.engine, now=now, dataset_id=one)
        return fit_answer({"action": Action.STATUS, **ledger_status.as_json(report)})
    if action == Action.APPROVE:
        dataset_id, by = _known_dataset(rt, _whole(event, "dataset_id")), _by(event)
        approved = operators.approve(rt.engine, dataset_id, by=by, now=now)
        logger.info("held rows approved by an operator", extra={"dataset_id": dataset_id, "by": by, "count": approved})
        return {"action": Action.APPROVE, "dataset_id": dataset_id, "by": by, "approved": approved}
    annotation_id, by = _whole(event, "annotation_id"), _by(event)
    released = operators.release(rt.engine, annotation_id, by=by, now=now)
    logger.info(
        "annotation released by an operator",
        extra={"annotation_id": annotation_id, "by": by, "done": released.value},
    )
    return {
        "action": Action.RELEASE,
        "annotation_id": annotation_id,
        "by": by,
        "released": bool(released),
        "outcome": released.value,  # released, already released, nothing to release
    }
