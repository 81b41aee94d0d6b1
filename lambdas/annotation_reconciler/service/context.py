"""What every operation of the service works with: one portal database, one bucket (and its layout), the settings
and a clock, frozen in one :class:`Context`.

Each operation is a module of functions taking the context first (``apply_changes``, ``survey``, ``scan``,
``purge``, ``inventory``, ``cleanup``); :class:`~annotation_reconciler.service.reconciler.Reconciler` is the
facade the handlers and CLIs call::

    context = Context(engine, S3Storage(client, bucket), settings)
    result = scan.scan_shard(context, Scope(dataset_id=10001))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from annotation_reconciler.rules.ordering import Clock, utcnow
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage

#: Seconds left in the Lambda budget below which a scan stops and hands over to the next run.
SAFETY_MARGIN_S = 30.0


@dataclass(frozen=True)
class Context:
    """The parts of one reconciler: the database, the bucket, the settings and a clock; the bucket's layout follows
    from the settings."""

    engine: Engine
    storage: S3Storage
    settings: Settings
    clock: Clock = utcnow
    #: Due rows a purge claims and settles per transaction.
    purge_batch_size: int = 500
    layout: BucketLayout = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", BucketLayout.from_prefix(self.settings.bucket, self.settings.s3_prefix))
