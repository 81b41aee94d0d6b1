"""``handle_work``: the work queue, one shard of the full reconciliation per SQS message (a LIST shard, a
retry of some of its prefixes, or a slice of S3 Inventory candidates to confirm)."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from annotation_reconciler.fanout import ShardMessage
from annotation_reconciler.handlers.common import count, logger, metrics, remaining, runtime, send_shards
from annotation_reconciler.ledger import blind_prefixes
from annotation_reconciler.logs import package_logs
from annotation_reconciler.names import Env, Metric
from annotation_reconciler.rules import prefix_retry
from annotation_reconciler.rules.scope import Scope
from annotation_reconciler.service import inventory, results
from annotation_reconciler.service.deletions import capped
from annotation_reconciler.service.runtime import Runtime


def _scan(
    rt: Runtime, scope: Scope, resume: str | None, context: Any, prefixes: list[str] | None = None
) -> results.ScanResult:
    result = rt.reconciler.scan_shard(
        scope, remaining_seconds=remaining(context), resume_after=resume, only_prefixes=prefixes
    )
    count(Metric.SHARDS_SCANNED, 1)
    count(Metric.ANNOTATIONS_QUARANTINED, len(result.quarantined))
    count(Metric.ANNOTATIONS_RELEASED, len(result.released))
    count(Metric.ANNOTATIONS_HELD, len(result.held))
    count(Metric.ANNOTATIONS_UNKNOWN, len(result.unknown))
    count(Metric.ANNOTATIONS_RESURRECTED, len(result.resurrected))
    count(Metric.ANNOTATION_FILES_MISSING, result.missing_files)
    count(Metric.METADATA_UNTRACKED, len(result.untracked))
    if result.untracked:
        logger.warning(
            "metadata in S3 that no annotation row points to (see `annotation-reconciler status`)",
            extra={"untracked_count": len(result.untracked), "untracked": result.untracked[:20]},
        )
    if result.held:
        logger.error(
            "suspicious empty listings held annotations for an operator",
            extra={"held_count": len(result.held), "held": capped(result.held)},
        )
    if result.over_page_limit:
        logger.warning(
            f"prefixes beyond {Env.SCAN_PAGE_LIMIT}: their annotations are unknown",
            extra={"prefixes": result.over_page_limit[:20], "prefix_count": len(result.over_page_limit)},
        )
    if result.errors:
        logger.error("shard had S3 errors; its annotations stay unverified", extra={"errors": result.errors[:20]})
    return result


def _confirm_inventory(rt: Runtime, body: dict[str, Any], context: Any) -> None:
    """One slice of inventory candidates: confirm against S3 within the budget, queue the rest."""
    shard = inventory.read_shard(body)
    result = rt.reconciler.confirm_inventory_shard(shard, remaining_seconds=remaining(context))
    count(Metric.SHARDS_SCANNED, 1)
    count(Metric.ANNOTATIONS_QUARANTINED, len(result.quarantined))
    count(Metric.ANNOTATIONS_RELEASED, len(result.released))
    if result.skipped:
        logger.info(
            "candidates changed in the database since the plan; skipped",
            extra={"count": len(result.skipped), "ids": capped(result.skipped)},
        )
    if result.remaining:  # the continuation first: what was done is written, the rest goes on
        if not rt.settings.work_queue_url:
            raise RuntimeError(f"the time budget ran out and {Env.WORK_QUEUE_URL} is not set to continue")
        send_shards(rt, [inventory.continuation(shard, result.remaining)])
        logger.info(
            "time budget ran out; inventory slice continues in a new message",
            extra={"remaining": len(result.remaining)},
        )
    if result.unknown:
        # Nothing was decided for them; only they are asked about again, a few times, then they wait for the
        # next report (counted): an unknown candidate never fails the slice.
        again = inventory.retry(shard, result.unknown) if rt.settings.work_queue_url else None
        if again is not None:
            send_shards(rt, [again], delay_seconds=prefix_retry.RETRY_DELAY_S)
            logger.warning(
                "S3 could not confirm some inventory candidates; they are retried alone",
                extra={"count": len(result.unknown), "attempt": again["attempt"]},
            )
        else:
            count(Metric.ANNOTATIONS_UNKNOWN, len(result.unknown))
            logger.error(
                "S3 could not confirm some inventory candidates after their retries; they wait for the next report",
                extra={"count": len(result.unknown), "ids": capped([u.ref.id for u in result.unknown])},
            )


def _scan_message(rt: Runtime, body: Any, context: Any) -> None:
    """One LIST shard (or a retry of some of its prefixes): the continuation is queued first, then a message
    naming only the prefixes S3 would not list; after their retries those are recorded blind."""
    message = ShardMessage.parse(body)
    scope, attempt = message.scope, message.attempt
    prefixes = list(message.prefixes) if message.prefixes is not None else None
    result = _scan(rt, scope, message.resume_after, context, prefixes)
    if result.failed_prefixes and not rt.settings.work_queue_url:
        raise RuntimeError(f"{len(result.errors)} prefixes could not be listed: {result.errors[0]}")
    if not result.complete and rt.settings.work_queue_url:
        send_shards(rt, [message.continued(result.resume_after).to_body()])
        logger.info(
            "time budget ran out; shard continues in a new message", extra={"resume_after": result.resume_after}
        )
    now = rt.reconciler.clock()
    # a prefix over RECONCILER_SCAN_PAGE_LIMIT would be over it again: blind at once, not retried
    over_limit = set(result.over_page_limit)
    retry, blind = prefix_retry.split_failures([p for p in result.failed_prefixes if p not in over_limit], attempt)
    blind = sorted({*blind, *(p for p in over_limit if p in result.failed_prefixes)})
    if retry:
        send_shards(rt, [message.retry(retry, attempt + 1).to_body()], delay_seconds=prefix_retry.RETRY_DELAY_S)
        logger.warning("prefixes could not be listed; retried alone", extra={"prefixes": retry, "attempt": attempt + 1})
    with rt.engine.begin() as conn:
        blind_prefixes.resolve(conn, result.listed_prefixes, now=now)
        blind_prefixes.record(conn, {p: result.failed_prefixes[p] for p in blind}, dataset_id=scope.dataset_id, now=now)
    if blind:
        count(Metric.PREFIXES_BLIND, len(blind))
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
    """Each record alone (powertools' batch processor): a record that raises is reported in
    ``batchItemFailures`` for SQS to deliver again, the others are deleted; a batch that fails whole is reported,
    not raised (every record's failure is already logged)."""
    rt = runtime()

    def one(record: SQSRecord) -> None:
        logger.set_correlation_id(record.message_id or None)
        try:
            body = json.loads(record.body or "")
            if isinstance(body, dict) and body.get("type") == inventory.MESSAGE_TYPE:
                _confirm_inventory(rt, body, context)
            else:
                _scan_message(rt, body, context)
        except Exception:
            logger.exception("shard failed", extra={"message_id": record.message_id})
            raise

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(
            event={"Records": event.get("Records", [])}, record_handler=one, processor=processor, context=context
        )
    )
