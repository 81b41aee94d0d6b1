"""The service: one :class:`Reconciler` whose operations each live in a module of one job and return a
result object (``results.py``).

Handlers and CLIs build a :class:`Reconciler` and call one method::

    reconciler = Reconciler(engine, S3Storage(client, bucket), settings)
    result = reconciler.apply_changes(parsed.changes)     # S3 events -> quarantine / release (event_changes.py)
    result = reconciler.scan_shard(Scope(dataset_id=10001))  # LIST, decide, quarantine / release (scan.py)
    result = reconciler.purge()                            # grace over -> re-check S3 -> delete (purge.py)
    reconciler.approve(10001, by="alice")                  # an operator's decision (operators.py)
"""

from __future__ import annotations

from annotation_reconciler.service.apply_changes import EventsMixin
from annotation_reconciler.service.operators import OperatorsMixin
from annotation_reconciler.service.purge import PurgeMixin
from annotation_reconciler.service.scan import ScanMixin

__all__ = ["Reconciler"]


class Reconciler(EventsMixin, ScanMixin, PurgeMixin, OperatorsMixin):
    """The reconciler's operations over one portal database and one bucket."""
