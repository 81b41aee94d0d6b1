"""``handle_schedule``: the EventBridge schedule (purge, the fan-out of the full reconciliation).

``migrate`` is not an action of the Lambdas: their role may create nothing (issue 24); the portal's owner runs
``annotation-reconciler migrate`` itself (README, Deploy, step 3)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from annotation_reconciler.errors import InventoryStale
from annotation_reconciler.fanout import ShardMessage
from annotation_reconciler.handlers.common import count, logger, metrics, remaining, runtime, send_shards
from annotation_reconciler.handlers.operator import OPERATOR_ACTIONS, operator_action
from annotation_reconciler.ledger import waiting
from annotation_reconciler.logs import correlation_id, package_logs
from annotation_reconciler.names import Action, Env, Metric, names_of
from annotation_reconciler.service import inventory
from annotation_reconciler.service.deletions import capped
from annotation_reconciler.service.plan import plan_shards
from annotation_reconciler.service.runtime import Runtime

#: Why ``{"action": "migrate"}`` is refused, and what to run instead.
MIGRATE_MOVED = (
    "the Lambdas no longer migrate: their database role may create nothing. The portal's owner runs "
    "`annotation-reconciler migrate --db-url postgresql+pg8000://OWNER@HOST:5432/DB` and applies the SQL of "
    "`annotation-reconciler grants --role ROLE` with psql -v ON_ERROR_STOP=1 (README, Deploy, step 3)"
)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handle_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The schedule: ``{"action": "purge" | "reconcile" | "all"}`` (top level or in ``detail``), and the operator's
    ``status``, ``approve`` and ``release`` (:mod:`.operator`)."""
    logger.set_correlation_id(correlation_id(event, context))
    with package_logs(logger):
        return _handle_schedule(event, context)


def _handle_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    action = (detail or {}).get("action") or event.get("action") or Action.ALL
    if action == "migrate":
        raise ValueError(MIGRATE_MOVED)
    if action not in names_of(Action):
        known = ", ".join(repr(a) for a in names_of(Action))
        raise ValueError(f"unknown schedule action {action!r}: use one of {known}")
    rt = runtime()
    if action in OPERATOR_ACTIONS:
        return operator_action(rt, action, {**event, **(detail or {})})
    if action in (Action.RECONCILE, Action.ALL) and not rt.settings.work_queue_url:
        # One invocation may not see the whole bucket, and a run cut short here could never resume.
        raise ValueError(
            f"the scheduled reconciliation fans its shards out to the work queue: set {Env.WORK_QUEUE_URL}; "
            "for a one-off scan without a queue run `annotation-reconciler scan`"
        )
    answer: dict[str, Any] = {"action": action, "dry_run": rt.settings.dry_run}
    if action in (Action.PURGE, Action.ALL):
        purge = rt.reconciler.purge(remaining_seconds=remaining(context))
        count(Metric.ANNOTATIONS_PURGED, len(purge.deleted))
        count(Metric.ANNOTATIONS_WOULD_PURGE, len(purge.would_delete))
        count(Metric.ANNOTATIONS_RELEASED, len(purge.released))
        count(Metric.ANNOTATIONS_HELD, len(purge.held))
        count(Metric.ANNOTATIONS_UNKNOWN, len(purge.unknown))
        count(Metric.PURGE_BATCHES_ROLLED_BACK, len(purge.errors))
        if purge.failed:
            logger.error(
                "the purge could not delete some rows even alone; they wait with their error "
                "(see `annotation-reconciler status`)",
                extra={"failed_count": len(purge.failed), "failed": capped(purge.failed)},
            )
        if purge.held:
            logger.error(
                "mass-deletion guard held annotations; run `annotation-reconciler approve --dataset-id N`",
                extra={"held_datasets": {str(k): v for k, v in purge.held_datasets.items()}},
            )
        if purge.dry_run and purge.would_delete:
            logger.warning(
                "dry run: would purge",
                extra={"annotation_count": len(purge.would_delete), "annotation_ids": capped(purge.would_delete)},
            )
        answer["waiting"] = _emit_gauges(rt)
        answer["purge"] = {
            "deleted": len(purge.deleted),
            "would_delete": len(purge.would_delete),
            "released": len(purge.released),
            "held": len(purge.held),
            "unknown": len(purge.unknown),
            "failed": len(purge.failed),
        }
    if action in (Action.RECONCILE, Action.ALL):
        plan = _inventory_plan(rt, context) if rt.settings.inventory_manifest else None
        if plan is not None:
            queued = send_shards(rt, inventory.shard_messages(plan))
            count(Metric.INVENTORY_CANDIDATES, len(plan.candidates))
            count(Metric.ANNOTATIONS_UNKNOWN, len(plan.unknown))
            count(Metric.METADATA_UNTRACKED, len(plan.untracked))
            count(Metric.SHARDS_QUEUED, queued)
            answer["inventory"] = {
                "manifest": plan.manifest,
                "report_time": plan.report_time.isoformat(),
                "candidates": len(plan.candidates),
                "unknown": len(plan.unknown),
                "untracked": len(plan.untracked),
                "shards_queued": queued,
            }
        else:
            planned = plan_shards(rt.engine)
            answer["shards_queued"] = send_shards(rt, [ShardMessage(s).to_body() for s in planned])
            count(Metric.SHARDS_QUEUED, answer["shards_queued"])
    return answer


def _emit_gauges(rt: Runtime) -> dict[str, int]:
    """Every waiting state as a gauge, emitted each period even when zero (an alarm then clears only when the
    rows stop waiting, not when a run stops announcing them)."""
    with rt.engine.connect() as conn:
        found = waiting.gauges(conn, now=rt.reconciler.clock()).metrics()
    for name, value in found.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if any(found.values()):
        logger.warning("rows and prefixes wait; `annotation-reconciler status` explains each", extra={"waiting": found})
    return found


def _inventory_plan(rt: Runtime, context: Any) -> inventory.InventoryPlan | None:
    """The inventory's candidates, or None when the report cannot be used: then the LIST fan-out runs instead.
    Too old: InventoryStale. Anything else (no report, a data file missing or altered, a manifest of another
    bucket, a report too large for the time budget, an S3 error): InventoryUnreadable. Either way the
    period still reconciles: a lost deletion is found by the LISTs."""
    assert rt.settings.inventory_manifest is not None
    try:
        return rt.reconciler.plan_inventory(rt.settings.inventory_manifest, remaining_seconds=remaining(context))
    except InventoryStale as exc:
        count(Metric.INVENTORY_STALE, 1)
        logger.error("inventory refused as stale; reconciling with LISTs instead", extra={"reason": str(exc)})
    except Exception as exc:
        count(Metric.INVENTORY_UNREADABLE, 1)
        logger.exception(
            "inventory could not be read; reconciling with LISTs instead",
            extra={"reason": f"{type(exc).__name__}: {exc}"},
        )
    return None
