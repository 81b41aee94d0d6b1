"""``handle_events``: S3 object events -> quarantine / release. For SQS, only failed messages are retried."""

from __future__ import annotations

from typing import Any

from annotation_reconciler.errors import EventShapeError
from annotation_reconciler.handlers.common import count, logger, metrics, runtime
from annotation_reconciler.logs import correlation_id, package_logs
from annotation_reconciler.names import Metric
from annotation_reconciler.rules.notifications import ObjectChange, parse_event
from annotation_reconciler.service import results
from annotation_reconciler.service.deletions import capped
from annotation_reconciler.service.runtime import Runtime


def _apply(rt: Runtime, changes: list[ObjectChange]) -> results.ChangeResult:
    result = rt.reconciler.apply_changes(changes)
    count(Metric.ANNOTATIONS_QUARANTINED, len(result.quarantined))
    count(Metric.ANNOTATIONS_RELEASED, len(result.released))
    count(Metric.EVENTS_IGNORED, sum(result.ignored.values()))
    count(Metric.ANNOTATION_FILES_MISSING, result.missing_files)
    count(Metric.ANNOTATIONS_RESURRECTED, len(result.resurrected))
    count(Metric.EVENTS_OUT_OF_ORDER, result.out_of_order)
    if result.resurrected:
        logger.error(
            "purged annotations have their metadata back in S3: see `annotation-reconciler status`",
            extra={"resurrected": [{"annotation_id": a, "key": k} for a, k in result.resurrected[:20]]},
        )
    if result.quarantined or result.released:
        logger.info(
            "events applied",
            extra={
                "quarantined_count": len(result.quarantined),
                "quarantined": capped(result.quarantined),
                "released_count": len(result.released),
                "released": capped(result.released),
            },
        )
    if result.ignored:
        logger.info("events ignored", extra={"ignored": dict(result.ignored)})
    return result


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handle_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """S3 object events -> quarantine / release. For SQS, only failed messages are retried."""
    logger.set_correlation_id(correlation_id(event, context))
    with package_logs(logger):
        return _handle_events(event)


def _handle_events(event: dict[str, Any]) -> dict[str, Any]:
    try:
        parsed = parse_event(event)
    except EventShapeError as exc:
        count(Metric.EVENTS_REJECTED, 1)
        logger.error("rejected an event of unknown shape", extra={"reason": str(exc)})
        raise
    rt = runtime()
    failures = [m.message_id for m in parsed.messages if m.error]
    for message in parsed.messages:
        if message.error:
            logger.error("rejected a message", extra={"message_id": message.message_id, "reason": message.error})
    good = [m for m in parsed.messages if not m.error]
    changes = [c for m in good for c in m.changes]
    count(Metric.EVENTS_SEEN, len(changes))
    count(Metric.EVENTS_REJECTED, len(failures))
    count(Metric.EVENTS_SKIPPED, sum(len(m.skips) for m in parsed.messages))
    unsafe = [s.detail for m in parsed.messages for s in m.skips if s.reason == "unsafe_key"]
    if unsafe:  # a key S3 accepts: retrying could never help, so it is counted and skipped, never failed
        count(Metric.EVENT_KEYS_UNSAFE, len(unsafe))
        logger.warning("skipped events for keys the reconciler will not reason about", extra={"keys": unsafe[:20]})
    quarantined = released = 0
    try:
        result = _apply(rt, changes)
        quarantined, released = len(result.quarantined), len(result.released)
    except Exception:
        # Find the messages that break the batch (each tried alone, then rolled back), then apply the
        # healthy ones together, in event order; only the broken ones are reported as failures.
        logger.exception("batch failed; finding the messages that fail")
        batch_id = logger.get_correlation_id()
        healthy = []
        for message in good:
            logger.set_correlation_id(message.message_id or batch_id)
            try:
                rt.reconciler.apply_changes(list(message.changes), rollback=True)
                healthy.append(message)
            except Exception:
                logger.exception("message failed", extra={"message_id": message.message_id})
                failures.append(message.message_id)
        logger.set_correlation_id(batch_id)
        try:
            result = _apply(rt, [c for m in healthy for c in m.changes])
            quarantined, released = len(result.quarantined), len(result.released)
        except Exception:
            logger.exception("the healthy messages failed together; all are retried")
            failures += [m.message_id for m in healthy]
    if parsed.kind == "sqs":
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures if mid is not None]}
    if failures:
        raise RuntimeError(f"event could not be applied: {[m.error for m in parsed.messages if m.error]}")
    return {"changes": len(changes), "quarantined": quarantined, "released": released}
