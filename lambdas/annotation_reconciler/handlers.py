"""Lambda entry points: parse, call one service operation, turn the result into metrics and logs.

- ``handle_events``: S3 object events (through SQS, or direct S3 / EventBridge invocations).
- ``handle_schedule``: the EventBridge schedule: purge, and fan out the full reconciliation.
- ``handle_work``: the work queue: one full-reconciliation shard per message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from annotation_reconciler import reconcile
from annotation_reconciler.events import EventShapeError, ObjectChange, parse_event
from annotation_reconciler.ledger.repository import Scope
from annotation_reconciler.runtime import Runtime, cached_runtime

SERVICE = "annotation-reconciler"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="AnnotationReconciler", service=SERVICE)
tracer = Tracer(service=SERVICE)

#: Hooks for the local runtime and tests; Lambda uses the cached runtime.
runtime_factory: Callable[[], Runtime] = cached_runtime


def _remaining(context: Any) -> Callable[[], float] | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: getter() / 1000.0) if callable(getter) else None


def _count(name: str, value: float) -> None:
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _apply(rt: Runtime, changes: list[ObjectChange]) -> reconcile.ChangeResult:
    result = rt.reconciler.apply_changes(changes)
    _count("AnnotationsQuarantined", len(result.quarantined))
    _count("AnnotationsReleased", len(result.released))
    _count("EventsIgnored", sum(result.ignored.values()))
    _count("AnnotationFilesMissing", result.missing_files)
    _count("AnnotationsResurrected", len(result.resurrected))
    if result.resurrected:
        logger.error(
            "purged annotations have their metadata back in S3: see `annotation-reconciler status`",
            extra={"resurrected": [{"annotation_id": a, "key": k} for a, k in result.resurrected[:20]]},
        )
    if result.quarantined or result.released:
        logger.info("events applied", extra={"quarantined": result.quarantined, "released": result.released})
    if result.ignored:
        logger.info("events ignored", extra={"ignored": dict(result.ignored)})
    return result


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handle_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """S3 object events -> quarantine / release. For SQS, only failed messages are retried."""
    try:
        parsed = parse_event(event)
    except EventShapeError as exc:
        _count("EventsRejected", 1)
        logger.error("rejected an event of unknown shape", extra={"reason": str(exc)})
        raise
    rt = runtime_factory()
    failures = [m.message_id for m in parsed.messages if m.error]
    for message in parsed.messages:
        if message.error:
            logger.error("rejected a message", extra={"message_id": message.message_id, "reason": message.error})
    good = [m for m in parsed.messages if not m.error]
    changes = [c for m in good for c in m.changes]
    _count("EventsSeen", len(changes))
    _count("EventsRejected", len(failures))
    _count("EventsSkipped", sum(len(m.skips) for m in parsed.messages))
    quarantined = released = 0
    try:
        result = _apply(rt, changes)
        quarantined, released = len(result.quarantined), len(result.released)
    except Exception:
        # Isolate the message that breaks the batch: retry each alone, fail only those that fail.
        logger.exception("batch failed; retrying message by message")
        for message in good:
            try:
                single = _apply(rt, list(message.changes))
                quarantined += len(single.quarantined)
                released += len(single.released)
            except Exception:
                logger.exception("message failed", extra={"message_id": message.message_id})
                failures.append(message.message_id)
    if parsed.kind == "sqs":
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures if mid is not None]}
    if failures:
        raise RuntimeError(f"event could not be applied: {[m.error for m in parsed.messages if m.error]}")
    return {"changes": len(changes), "quarantined": quarantined, "released": released}


def _send_shards(rt: Runtime, bodies: list[dict[str, Any]]) -> int:
    queue = rt.settings.work_queue_url
    assert queue is not None
    sent = 0
    for i in range(0, len(bodies), 10):
        chunk = bodies[i : i + 10]
        entries: list[Any] = [{"Id": str(n), "MessageBody": json.dumps(body)} for n, body in enumerate(chunk)]
        response = rt.sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"could not queue {len(response['Failed'])} shard messages: {response['Failed']}")
        sent += len(chunk)
    return sent


def _scan(rt: Runtime, scope: Scope, resume: str | None, context: Any) -> reconcile.ScanResult:
    result = rt.reconciler.scan_shard(scope, remaining_seconds=_remaining(context), resume_after=resume)
    _count("ShardsScanned", 1)
    _count("AnnotationsQuarantined", len(result.quarantined))
    _count("AnnotationsReleased", len(result.released))
    _count("AnnotationsHeld", len(result.held))
    _count("AnnotationsUnverifiable", len(result.unverifiable))
    _count("AnnotationsResurrected", len(result.resurrected))
    if result.held:
        metrics.add_metric(name="PurgeHeld", unit=MetricUnit.Count, value=len(result.held))
        logger.error("empty listings held annotations for an operator", extra={"held": result.held})
    if result.errors:
        logger.error("shard had S3 errors; its annotations stay unverified", extra={"errors": result.errors[:20]})
    return result


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handle_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The schedule: ``{"action": "purge" | "reconcile" | "all"}`` (top level or in ``detail``)."""
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    action = (detail or {}).get("action") or event.get("action") or "all"
    if action not in ("purge", "reconcile", "all"):
        raise ValueError(f"unknown schedule action {action!r}: use 'purge', 'reconcile' or 'all'")
    rt = runtime_factory()
    if action in ("reconcile", "all") and not (rt.settings.work_queue_url or rt.settings.inventory_manifest):
        # One invocation may not see the whole bucket, and a run cut short here could never resume.
        raise ValueError(
            "the scheduled reconciliation fans its shards out to the work queue: set RECONCILER_WORK_QUEUE_URL "
            "(or RECONCILER_INVENTORY_MANIFEST); for a one-off scan without a queue run `annotation-reconciler scan`"
        )
    answer: dict[str, Any] = {"action": action, "dry_run": rt.settings.dry_run}
    if action in ("purge", "all"):
        purge = rt.reconciler.purge(remaining_seconds=_remaining(context))
        _count("AnnotationsPurged", len(purge.purged))
        _count("AnnotationsWouldPurge", len(purge.would_purge))
        _count("AnnotationsReleased", len(purge.released))
        _count("AnnotationsHeld", len(purge.held))
        _count("AnnotationsUnverifiable", len(purge.unknown))
        _count("PurgeBatchesRolledBack", len(purge.errors))
        if purge.held:
            metrics.add_metric(name="PurgeHeld", unit=MetricUnit.Count, value=len(purge.held))
            logger.error(
                "mass-deletion guard held annotations; run `annotation-reconciler approve --dataset-id N`",
                extra={"held_datasets": {str(k): v for k, v in purge.held_datasets.items()}},
            )
        if purge.dry_run and purge.would_purge:
            logger.warning("dry run: would purge", extra={"annotation_ids": purge.would_purge})
        answer["purge"] = {
            "purged": len(purge.purged),
            "would_purge": len(purge.would_purge),
            "released": len(purge.released),
            "held": len(purge.held),
            "unknown": len(purge.unknown),
        }
    if action in ("reconcile", "all"):
        if rt.settings.inventory_manifest:
            found = rt.reconciler.scan_inventory(rt.settings.inventory_manifest)
            _count("AnnotationsQuarantined", len(found.quarantined))
            _count("AnnotationsReleased", len(found.released))
            _count("InventoryCandidates", found.candidates)
            answer["inventory"] = {
                "manifest": found.manifest,
                "candidates": found.candidates,
                "quarantined": len(found.quarantined),
                "unconfirmed": found.unconfirmed,
            }
        else:
            shards = reconcile.plan_shards(rt.engine)
            answer["shards_queued"] = _send_shards(rt, [reconcile.shard_message(s) for s in shards])
            _count("ShardsQueued", answer["shards_queued"])
    return answer


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handle_work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The work queue: each SQS message is one shard of the full reconciliation."""
    rt = runtime_factory()
    failures: list[str] = []
    for record in event.get("Records", []):
        message_id = record.get("messageId", "")
        try:
            scope, resume = reconcile.scope_from_message(json.loads(record.get("body", "")))
            result = _scan(rt, scope, resume, context)
            if result.errors:
                # Nothing was decided for the prefixes S3 could not list: retry the shard (then DLQ).
                raise RuntimeError(f"{len(result.errors)} prefixes could not be listed: {result.errors[0]}")
            if not result.complete and rt.settings.work_queue_url:
                _send_shards(rt, [reconcile.shard_message(scope, result.resume_after)])
                logger.info(
                    "time budget ran out; shard continues in a new message", extra={"resume_after": result.resume_after}
                )
        except Exception:
            logger.exception("shard failed", extra={"message_id": message_id})
            failures.append(message_id)
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures]}
