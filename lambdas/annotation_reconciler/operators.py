"""What an operator decides: approve a held dataset, release an annotation for good, end such a release."""

from __future__ import annotations

from annotation_reconciler.core import ReconcilerCore
from annotation_reconciler.ledger import exemptions
from annotation_reconciler.ledger import repository as repo


class OperatorsMixin(ReconcilerCore):
    """The operator's decisions, each in one transaction, each naming who decided."""

    def approve(self, dataset_id: int, *, by: str = "operator") -> int:
        """Let a held dataset's deletions proceed at the next purge (after a fresh S3 check)."""
        with self.engine.begin() as conn:
            return repo.approve_dataset(conn, dataset_id, now=self.clock(), by=by)

    def release(self, annotation_id: int, *, by: str = "operator") -> bool:
        """Release an annotation for good: exempt from a new quarantine until its metadata or stored path
        changes, or :meth:`clear_release`."""
        with self.engine.begin() as conn:
            return exemptions.release_by_operator(conn, annotation_id, now=self.clock(), by=by)

    def clear_release(self, annotation_id: int, *, by: str = "operator") -> int:
        with self.engine.begin() as conn:
            return exemptions.clear(conn, annotation_id, now=self.clock(), by=by)
