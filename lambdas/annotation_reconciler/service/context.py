"""The parts every operation of the reconciler uses: the database, the bucket, the settings and a clock.

Each job of the service is a mixin over :class:`ReconcilerCore` in a module of its own (``event_changes``,
``survey``, ``scan``, ``purge``, ``operators``); ``reconcile.Reconciler`` puts them together.
"""

from __future__ import annotations

from sqlalchemy import Engine

from annotation_reconciler.rules.ordering import Clock, utcnow
from annotation_reconciler.rules.paths import BucketLayout
from annotation_reconciler.settings import Settings
from annotation_reconciler.storage import S3Storage

#: Seconds left in the Lambda budget below which a scan stops and hands over to the next run.
SAFETY_MARGIN_S = 30.0


class ReconcilerCore:
    """The reconciler's parts: one portal database, one bucket (its layout), the settings and a clock."""

    def __init__(
        self,
        engine: Engine,
        storage: S3Storage,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        purge_batch_size: int = 500,
    ) -> None:
        self.engine = engine
        self.storage = storage
        self.settings = settings
        self.layout = BucketLayout.from_prefix(settings.bucket, settings.s3_prefix)
        self.clock = clock
        self.purge_batch_size = purge_batch_size
