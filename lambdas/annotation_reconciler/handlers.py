"""Lambda entry points: parse, call one service operation, turn the result into metrics and logs.

- ``handle_events``: S3 object events (through SQS, or direct S3 / EventBridge invocations).
- ``handle_schedule``: the EventBridge schedule: purge, and fan out the full reconciliation;
  ``{"action": "migrate"}`` (invoked by an operator) creates or upgrades the ledger.
- ``handle_work``: the work queue: one full-reconciliation shard per message (a LIST shard, or a
  slice of S3 Inventory candidates to confirm).

Lambda's active tracing records each invocation; the bundle carries no X-Ray SDK (it would bring
a second botocore), so there is no powertools Tracer here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from annotation_reconciler import inventory_shards, prefix_retry, results, shards
from annotation_reconciler.deletions import capped
from annotation_reconciler.errors import EventShapeError, InventoryStale
from annotation_reconciler.events import ObjectChange, parse_event
from annotation_reconciler.ledger import blind_prefixes
from annotation_reconciler.logs import correlation_id, package_logs
from annotation_reconciler.runtime import Runtime, cached_runtime
from annotation_reconciler.scope import Scope

SERVICE = "annotation-reconciler"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="AnnotationReconciler", service=SERVICE)

#: Hooks for the local runtime and tests; Lambda uses the cached runtime.
runtime_factory: Callable[[], Runtime] = cached_runtime


def _remaining(context: Any) -> Callable[[], float] | None:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: getter() / 1000.0) if callable(getter) else None


def _count(name: str, value: float) -> None:
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _apply(rt: Runtime, changes: list[ObjectChange]) -> results.ChangeResult:
    result = rt.reconciler.apply_changes(changes)
    _count("AnnotationsQuarantined", len(result.quarantined))
    _count("AnnotationsReleased", len(result.released))
    _count("EventsIgnored", sum(result.ignored.values()))
    _count("AnnotationFilesMissing", result.missing_files)
    _count("AnnotationsResurrected", len(result.resurrected))
    _count("EventsOutOfOrder", result.out_of_order)
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


def _send_shards(rt: Runtime, bodies: list[dict[str, Any]], *, delay_seconds: int = 0) -> int:
    queue = rt.settings.work_queue_url
    assert queue is not None
    sent = 0
    for i in range(0, len(bodies), 10):
        chunk = bodies[i : i + 10]
        entries: list[Any] = [
            {"Id": str(n), "MessageBody": json.dumps(body), "DelaySeconds": delay_seconds}
            for n, body in enumerate(chunk)
        ]
        response = rt.sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"could not queue {len(response['Failed'])} shard messages: {response['Failed']}")
        sent += len(chunk)
    return sent


def _scan(
    rt: Runtime, scope: Scope, resume: str | None, context: Any, prefixes: list[str] | None = None
) -> results.ScanResult:
    result = rt.reconciler.scan_shard(
        scope, remaining_seconds=_remaining(context), resume_after=resume, only_prefixes=prefixes
    )
    _count("ShardsScanned", 1)
    _count("AnnotationsQuarantined", len(result.quarantined))
    _count("AnnotationsReleased", len(result.released))
    _count("AnnotationsHeld", len(result.held))
    _count("AnnotationsUnverifiable", len(result.unverifiable))
    _count("AnnotationsResurrected", len(result.resurrected))
    _count("AnnotationFilesMissing", result.missing_files)
    if result.held:
        metrics.add_metric(name="PurgeHeld", unit=MetricUnit.Count, value=len(result.held))
        logger.error(
            "suspicious empty listings held annotations for an operator",
            extra={"held_count": len(result.held), "held": capped(result.held)},
        )
    if result.over_page_limit:
        logger.warning(
            "prefixes beyond RECONCILER_SCAN_PAGE_LIMIT: their annotations are unknown",
            extra={"prefixes": result.over_page_limit[:20], "prefix_count": len(result.over_page_limit)},
        )
    if result.errors:
        logger.error("shard had S3 errors; its annotations stay unverified", extra={"errors": result.errors[:20]})
    return result


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handle_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The schedule: ``{"action": "purge" | "reconcile" | "all" | "migrate"}`` (top level or in ``detail``)."""
    logger.set_correlation_id(correlation_id(event, context))
    with package_logs(logger):
        return _handle_schedule(event, context)


def _handle_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    action = (detail or {}).get("action") or event.get("action") or "all"
    if action not in ("purge", "reconcile", "all", "migrate"):
        raise ValueError(f"unknown schedule action {action!r}: use 'purge', 'reconcile', 'all' or 'migrate'")
    rt = runtime_factory()
    if action == "migrate":
        return _migrate(rt)
    if action in ("reconcile", "all") and not rt.settings.work_queue_url:
        # One invocation may not see the whole bucket, and a run cut short here could never resume.
        raise ValueError(
            "the scheduled reconciliation fans its shards out to the work queue: set RECONCILER_WORK_QUEUE_URL; "
            "for a one-off scan without a queue run `annotation-reconciler scan`"
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
            logger.warning(
                "dry run: would purge",
                extra={"annotation_count": len(purge.would_purge), "annotation_ids": capped(purge.would_purge)},
            )
        answer["purge"] = {
            "purged": len(purge.purged),
            "would_purge": len(purge.would_purge),
            "released": len(purge.released),
            "held": len(purge.held),
            "unknown": len(purge.unknown),
        }
    if action in ("reconcile", "all"):
        plan = _inventory_plan(rt, context) if rt.settings.inventory_manifest else None
        if plan is not None:
            queued = _send_shards(rt, inventory_shards.shard_messages(plan))
            _count("InventoryCandidates", len(plan.candidates))
            _count("AnnotationsUnverifiable", len(plan.unverifiable))
            _count("ShardsQueued", queued)
            answer["inventory"] = {
                "manifest": plan.manifest,
                "report_time": plan.report_time.isoformat(),
                "candidates": len(plan.candidates),
                "unverifiable": len(plan.unverifiable),
                "shards_queued": queued,
            }
        else:
            planned = shards.plan_shards(rt.engine)
            answer["shards_queued"] = _send_shards(rt, [shards.shard_message(s) for s in planned])
            _count("ShardsQueued", answer["shards_queued"])
    return answer


def _inventory_plan(rt: Runtime, context: Any) -> inventory_shards.InventoryPlan | None:
    """The inventory's candidates, or None when the report is too old: then the LIST fan-out runs instead."""
    assert rt.settings.inventory_manifest is not None
    try:
        return inventory_shards.plan_inventory(
            rt.reconciler, rt.settings.inventory_manifest, remaining_seconds=_remaining(context)
        )
    except InventoryStale as exc:
        _count("InventoryStale", 1)
        logger.error("inventory refused as stale; reconciling with LISTs instead", extra={"reason": str(exc)})
        return None


def _migrate(rt: Runtime) -> dict[str, Any]:
    """Create or upgrade the ledger, as `annotation-reconciler migrate` does, from inside the VPC."""
    from annotation_reconciler.ledger import migrate as ledger_migrate  # alembic: only for this action

    before = ledger_migrate.current_revision(rt.engine)
    after = ledger_migrate.upgrade(rt.engine)
    indexed = ledger_migrate.metadata_path_index_ready(rt.engine)
    logger.info("ledger migrated", extra={"before": before, "after": after, "index_ready": indexed})
    if not indexed:
        logger.warning(
            "annotation(s3_metadata_path) has no index and this role does not own the table; ask its owner to run it",
            extra={"sql": ledger_migrate.INDEX_SQL},
        )
    return {"action": "migrate", "before": before, "after": after, "index_ready": indexed}


def _confirm_inventory(rt: Runtime, body: dict[str, Any], context: Any) -> None:
    """One slice of inventory candidates: confirm against S3 within the budget, queue the rest."""
    shard = inventory_shards.read_shard(body)
    result = inventory_shards.confirm_shard(rt.reconciler, shard, remaining_seconds=_remaining(context))
    _count("ShardsScanned", 1)
    _count("AnnotationsQuarantined", len(result.quarantined))
    _count("AnnotationsReleased", len(result.released))
    if result.skipped:
        logger.info(
            "candidates changed in the database since the plan; skipped",
            extra={"count": len(result.skipped), "ids": capped(result.skipped)},
        )
    if result.unconfirmed:
        # Nothing was decided for them; the confirmed part is written. Retry the slice (then DLQ).
        raise RuntimeError(f"S3 could not confirm {len(result.unconfirmed)} inventory candidates")
    if result.remaining:
        if not rt.settings.work_queue_url:
            raise RuntimeError("the time budget ran out and RECONCILER_WORK_QUEUE_URL is not set to continue")
        _send_shards(rt, [inventory_shards.continuation(shard, result.remaining)])
        logger.info(
            "time budget ran out; inventory slice continues in a new message",
            extra={"remaining": len(result.remaining)},
        )


def _scan_message(rt: Runtime, body: Any, context: Any) -> None:
    """One LIST shard (or a retry of some of its prefixes): the continuation is queued first, then a message
    naming only the prefixes S3 would not list; after their retries those are recorded blind."""
    scope, resume = shards.scope_from_message(body)
    prefixes, attempt = prefix_retry.read_retry(body)
    result = _scan(rt, scope, resume, context, prefixes)
    if result.failed_prefixes and not rt.settings.work_queue_url:
        raise RuntimeError(f"{len(result.errors)} prefixes could not be listed: {result.errors[0]}")
    if not result.complete and rt.settings.work_queue_url:
        continuation = shards.shard_message(scope, result.resume_after)
        if prefixes is not None:
            continuation.update(prefixes=prefixes, attempt=attempt)
        _send_shards(rt, [continuation])
        logger.info(
            "time budget ran out; shard continues in a new message", extra={"resume_after": result.resume_after}
        )
    now = rt.reconciler.clock()
    retry, blind = prefix_retry.split_failures(list(result.failed_prefixes), attempt)
    if retry:
        retry_body = prefix_retry.retry_message(scope, retry, attempt + 1)
        _send_shards(rt, [retry_body], delay_seconds=prefix_retry.RETRY_DELAY_S)
        logger.warning("prefixes could not be listed; retried alone", extra={"prefixes": retry, "attempt": attempt + 1})
    with rt.engine.begin() as conn:
        blind_prefixes.resolve(conn, result.listed_prefixes, now=now)
        blind_prefixes.record(conn, {p: result.failed_prefixes[p] for p in blind}, dataset_id=scope.dataset_id, now=now)
    if blind:
        _count("PrefixesBlind", len(blind))
        logger.error(
            "prefixes still unlisted after their retries: the scan is blind there (see `annotation-reconciler status`)",
            extra={"prefixes": blind[:20], "errors": [result.failed_prefixes[p] for p in blind[:5]]},
        )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handle_work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The work queue: each SQS message is one shard of the full reconciliation (LIST or inventory)."""
    with package_logs(logger):
        return _handle_work(event, context)


def _handle_work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    rt = runtime_factory()
    failures: list[str] = []
    for record in event.get("Records", []):
        message_id = record.get("messageId", "")
        logger.set_correlation_id(message_id or None)
        try:
            body = json.loads(record.get("body", ""))
            if isinstance(body, dict) and body.get("type") == inventory_shards.MESSAGE_TYPE:
                _confirm_inventory(rt, body, context)
                continue
            _scan_message(rt, body, context)
        except Exception:
            logger.exception("shard failed", extra={"message_id": message_id})
            failures.append(message_id)
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures]}
