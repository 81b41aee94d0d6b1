"""``handle_schedule``: the EventBridge schedule (purge, the fan-out of the full reconciliation) and the
operator's ``migrate``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from annotation_reconciler import inventory_shards, shards
from annotation_reconciler.deletions import capped
from annotation_reconciler.errors import InventoryStale
from annotation_reconciler.handlers.common import count, logger, metrics, remaining, runtime, send_shards
from annotation_reconciler.logs import correlation_id, package_logs
from annotation_reconciler.runtime import Runtime


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
    rt = runtime()
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
        purge = rt.reconciler.purge(remaining_seconds=remaining(context))
        count("AnnotationsPurged", len(purge.deleted))
        count("AnnotationsWouldPurge", len(purge.would_delete))
        count("AnnotationsReleased", len(purge.released))
        count("AnnotationsHeld", len(purge.held))
        count("AnnotationsUnknown", len(purge.unknown))
        count("PurgeBatchesRolledBack", len(purge.errors))
        if purge.held:
            metrics.add_metric(name="PurgeHeld", unit=MetricUnit.Count, value=len(purge.held))
            logger.error(
                "mass-deletion guard held annotations; run `annotation-reconciler approve --dataset-id N`",
                extra={"held_datasets": {str(k): v for k, v in purge.held_datasets.items()}},
            )
        if purge.dry_run and purge.would_delete:
            logger.warning(
                "dry run: would purge",
                extra={"annotation_count": len(purge.would_delete), "annotation_ids": capped(purge.would_delete)},
            )
        answer["purge"] = {
            "deleted": len(purge.deleted),
            "would_delete": len(purge.would_delete),
            "released": len(purge.released),
            "held": len(purge.held),
            "unknown": len(purge.unknown),
        }
    if action in ("reconcile", "all"):
        plan = _inventory_plan(rt, context) if rt.settings.inventory_manifest else None
        if plan is not None:
            queued = send_shards(rt, inventory_shards.shard_messages(plan))
            count("InventoryCandidates", len(plan.candidates))
            count("AnnotationsUnknown", len(plan.unknown))
            count("MetadataUntracked", len(plan.untracked))
            count("ShardsQueued", queued)
            answer["inventory"] = {
                "manifest": plan.manifest,
                "report_time": plan.report_time.isoformat(),
                "candidates": len(plan.candidates),
                "unknown": len(plan.unknown),
                "untracked": len(plan.untracked),
                "shards_queued": queued,
            }
        else:
            planned = shards.plan_shards(rt.engine)
            answer["shards_queued"] = send_shards(rt, [shards.shard_message(s) for s in planned])
            count("ShardsQueued", answer["shards_queued"])
    return answer


def _inventory_plan(rt: Runtime, context: Any) -> inventory_shards.InventoryPlan | None:
    """The inventory's candidates, or None when the report is too old: then the LIST fan-out runs instead."""
    assert rt.settings.inventory_manifest is not None
    try:
        return inventory_shards.plan_inventory(
            rt.reconciler, rt.settings.inventory_manifest, remaining_seconds=remaining(context)
        )
    except InventoryStale as exc:
        count("InventoryStale", 1)
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
