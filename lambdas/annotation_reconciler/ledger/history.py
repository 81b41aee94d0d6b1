"""What ``annotation-reconciler history`` reads: every deletion the audit recorded and its restore, newest first,
with who approved it where the ledger knows; and whether an id names anything at all (for clear refusals).

Every name is schema-qualified: no schema of the reconciler is on the session's ``search_path``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True, slots=True)
class Deletion:
    """One row of the deletion audit: an annotation deleted, by which path, and whether it was put back."""

    annotation_id: int
    dataset_id: int | None
    run_id: int | None
    s3_metadata_path: str
    metadata_key: str | None  # the key the ledger judged absent, where a quarantine row names it
    source: str  # the path that decided (event, scan, importer, cli): the quarantine row's, else the audit's
    reason: str
    deleted_at: datetime.datetime
    deleted_by: str  # the database login that called the deleting function
    approved_by: str | None
    restored_at: datetime.datetime | None
    restored_by: str | None

    @property
    def restore_command(self) -> str | None:
        """The command that undoes this deletion; ``None`` once it was restored."""
        if self.restored_at is not None:
            return None
        return f"annotation-reconciler restore --annotation-id {self.annotation_id} --no-dry-run"


# The purge deletes in the name of the path that quarantined a row: the ledger's source says which; the audit
# records the deleting call's. The quarantine row of a deletion is the one of the same annotation resolved
# nearest to the deletion's time (an annotation may be deleted, restored and deleted again).
_HISTORY = """
SELECT d.annotation_id, d.dataset_id, d.run_id, d.s3_metadata_path, q.metadata_key,
       coalesce(q.source, d.source), d.reason,
       d.deleted_at, d.deleted_by, q.approved_by, d.restored_at, d.restored_by
FROM annotation_reconciler_audit.deleted_annotation d
LEFT JOIN LATERAL (
    SELECT x.metadata_key, x.approved_by, x.source
    FROM annotation_reconciler.annotation_quarantine x
    WHERE x.annotation_id = d.annotation_id AND x.status IN ('purged', 'restored')
    ORDER BY abs(extract(epoch FROM (coalesce(x.resolved_at, x.detected_at) - d.deleted_at))), x.id DESC
    LIMIT 1
) q ON true
WHERE (CAST(:dataset_id AS integer) IS NULL OR d.dataset_id = CAST(:dataset_id AS integer))
  AND (CAST(:since AS timestamptz) IS NULL
       OR d.deleted_at >= CAST(:since AS timestamptz) OR d.restored_at >= CAST(:since AS timestamptz))
ORDER BY greatest(d.deleted_at, coalesce(d.restored_at, d.deleted_at)) DESC, d.id DESC
"""


def deletions(
    conn: Connection, *, dataset_id: int | None = None, since: datetime.datetime | None = None
) -> list[Deletion]:
    """Every recorded deletion (of ``dataset_id``; deleted or restored at or after ``since``), latest event first."""
    rows = conn.execute(text(_HISTORY), {"dataset_id": dataset_id, "since": since}).all()
    return [Deletion(*row) for row in rows]


_DATASET_KNOWN = """
SELECT EXISTS (SELECT 1 FROM public.run WHERE dataset_id = :id)
    OR EXISTS (SELECT 1 FROM annotation_reconciler.annotation_quarantine WHERE dataset_id = :id)
    OR EXISTS (SELECT 1 FROM annotation_reconciler_audit.deleted_annotation WHERE dataset_id = :id)
"""

_ANNOTATION_KNOWN = """
SELECT EXISTS (SELECT 1 FROM public.annotation WHERE id = :id)
    OR EXISTS (SELECT 1 FROM annotation_reconciler.annotation_quarantine WHERE annotation_id = :id)
    OR EXISTS (SELECT 1 FROM annotation_reconciler_audit.deleted_annotation WHERE annotation_id = :id)
"""


def dataset_known(conn: Connection, dataset_id: int) -> bool:
    """Whether the portal (a run of it: the reconciler's roles read ``run``, not ``dataset``), the ledger or the
    audit has ever seen ``dataset_id``."""
    return bool(conn.execute(text(_DATASET_KNOWN), {"id": dataset_id}).scalar_one())


def annotation_known(conn: Connection, annotation_id: int) -> bool:
    """Whether the portal, the ledger or the audit has ever seen ``annotation_id``."""
    return bool(conn.execute(text(_ANNOTATION_KNOWN), {"id": annotation_id}).scalar_one())
