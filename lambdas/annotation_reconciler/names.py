"""The names shared across a boundary, spelled here once: the environment variables the Lambdas and the commands
read (and the CDK stack sets), the CloudWatch namespace, service and metric names the handlers emit (and the stack
alarms on and graphs), and the actions the schedule Lambda takes. The handlers, the settings, ``infra/`` and the
benchmarks import them::

    from annotation_reconciler.names import NAMESPACE, Env, Metric
    environment = {Env.DRY_RUN: "false", Env.BUCKET: "cryoet-data-portal-public"}
    metrics.add_metric(name=Metric.ANNOTATIONS_PURGED, unit=MetricUnit.Count, value=3)

Plain strings (not enums), so that CDK's jsii, JSON and f-strings take them as they are. This module imports
nothing of the package: the CDK app imports it without the Lambdas' dependencies.
"""

from __future__ import annotations

from typing import Final

#: Powertools' service and CloudWatch namespace of every metric the handlers emit.
SERVICE: Final = "annotation-reconciler"
NAMESPACE: Final = "AnnotationReconciler"


class Env:
    """The ``RECONCILER_*`` environment variables: the settings of the Lambdas and commands, then the local and test
    tools' own."""

    BUCKET: Final = "RECONCILER_BUCKET"
    DB_URL: Final = "RECONCILER_DB_URL"
    DB_SECRET_ARN: Final = "RECONCILER_DB_SECRET_ARN"
    S3_PREFIX: Final = "RECONCILER_S3_PREFIX"
    DRY_RUN: Final = "RECONCILER_DRY_RUN"
    GRACE_PERIOD_HOURS: Final = "RECONCILER_GRACE_PERIOD_HOURS"
    ALLOW_SHORT_GRACE: Final = "RECONCILER_ALLOW_SHORT_GRACE"
    MAX_PURGE_FRACTION: Final = "RECONCILER_MAX_PURGE_FRACTION"
    WORK_QUEUE_URL: Final = "RECONCILER_WORK_QUEUE_URL"
    INVENTORY_MANIFEST: Final = "RECONCILER_INVENTORY_MANIFEST"
    SCAN_PAGE_LIMIT: Final = "RECONCILER_SCAN_PAGE_LIMIT"
    RESURRECTION_DAYS: Final = "RECONCILER_RESURRECTION_DAYS"
    IMPORTER_CLEANUP: Final = "RECONCILER_IMPORTER_CLEANUP"
    DB_CA_BUNDLE: Final = "RECONCILER_DB_CA_BUNDLE"
    DB_TLS_SERVER_NAME: Final = "RECONCILER_DB_TLS_SERVER_NAME"
    S3_CONCURRENCY: Final = "RECONCILER_S3_CONCURRENCY"
    INVENTORY_MAX_AGE_HOURS: Final = "RECONCILER_INVENTORY_MAX_AGE_HOURS"
    LEDGER_RETENTION_DAYS: Final = "RECONCILER_LEDGER_RETENTION_DAYS"
    # the local tools' and the tests' own
    PG_BINDIR: Final = "RECONCILER_PG_BINDIR"
    PG_USER: Final = "RECONCILER_PG_USER"
    LOCAL_DIR: Final = "RECONCILER_LOCAL_DIR"
    TEST_DATABASE_URL: Final = "RECONCILER_TEST_DATABASE_URL"
    TEST_WORKER_SLOTS: Final = "RECONCILER_TEST_WORKER_SLOTS"
    BENCH_DATABASE_URL: Final = "RECONCILER_BENCH_DATABASE_URL"
    MODEL_EXAMPLES: Final = "RECONCILER_MODEL_EXAMPLES"
    MODEL_STEPS: Final = "RECONCILER_MODEL_STEPS"
    PASSWORD: Final = "RECONCILER_PASSWORD"


class Powertools:
    """The environment variables of aws-lambda-powertools that the stack and the local runtime set."""

    SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
    METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
    LOG_LEVEL: Final = "POWERTOOLS_LOG_LEVEL"
    METRICS_DISABLED: Final = "POWERTOOLS_METRICS_DISABLED"
    TRACE_DISABLED: Final = "POWERTOOLS_TRACE_DISABLED"


class Metric:
    """The metrics the handlers emit (namespace :data:`NAMESPACE`), each a count."""

    # the events Lambda
    EVENTS_SEEN: Final = "EventsSeen"
    EVENTS_SKIPPED: Final = "EventsSkipped"
    EVENTS_REJECTED: Final = "EventsRejected"
    EVENTS_IGNORED: Final = "EventsIgnored"
    EVENTS_OUT_OF_ORDER: Final = "EventsOutOfOrder"
    EVENT_KEYS_UNSAFE: Final = "EventKeysUnsafe"
    # what happened to annotations (events, scans, purges)
    ANNOTATIONS_QUARANTINED: Final = "AnnotationsQuarantined"
    ANNOTATIONS_RELEASED: Final = "AnnotationsReleased"
    ANNOTATIONS_PURGED: Final = "AnnotationsPurged"
    ANNOTATIONS_WOULD_PURGE: Final = "AnnotationsWouldPurge"
    ANNOTATIONS_HELD: Final = "AnnotationsHeld"
    ANNOTATIONS_UNKNOWN: Final = "AnnotationsUnknown"
    ANNOTATIONS_RESURRECTED: Final = "AnnotationsResurrected"
    ANNOTATION_FILES_MISSING: Final = "AnnotationFilesMissing"
    METADATA_UNTRACKED: Final = "MetadataUntracked"
    PURGE_BATCHES_ROLLED_BACK: Final = "PurgeBatchesRolledBack"
    # the schedule's fan-out and the work Lambda
    SHARDS_QUEUED: Final = "ShardsQueued"
    SHARDS_SCANNED: Final = "ShardsScanned"
    PREFIXES_BLIND: Final = "PrefixesBlind"
    INVENTORY_CANDIDATES: Final = "InventoryCandidates"
    INVENTORY_STALE: Final = "InventoryStale"
    INVENTORY_UNREADABLE: Final = "InventoryUnreadable"
    # gauges: what waits now, emitted by every scheduled run even when zero
    HELD_WAITING: Final = "HeldWaiting"
    PURGE_ROWS_FAILED: Final = "PurgeRowsFailed"
    UNKNOWN_WAITING: Final = "UnknownWaiting"
    QUARANTINE_OVERDUE: Final = "QuarantineOverdue"
    BLIND_PREFIXES: Final = "BlindPrefixes"


class Action:
    """What the schedule Lambda is asked to do (``{"action": ...}``): the schedule's and the operator's."""

    PURGE: Final = "purge"
    RECONCILE: Final = "reconcile"
    ALL: Final = "all"
    STATUS: Final = "status"
    APPROVE: Final = "approve"
    RELEASE: Final = "release"


def names_of(kind: type) -> list[str]:
    """Every name a class above holds, in the order written.

    >>> names_of(Action)
    ['purge', 'reconcile', 'all', 'status', 'approve', 'release']
    """
    return [value for key, value in vars(kind).items() if key.isupper() and isinstance(value, str)]
