"""The reconciler's own tables (the quarantine ledger, the deletion audit) and their Alembic migrations.

Two schemas, never ``public``, both owned by the role that runs ``migrate`` (the portal's owner):

- :data:`LEDGER_SCHEMA` holds the working ledger (quarantine rows, reports, blind prefixes): the reconciler's
  roles read and write its rows, and may create nothing there.
- :data:`AUDIT_SCHEMA` holds what the reconciler's roles may only read: the deletion audit (a snapshot of every
  row deleted, the only thing ``restore`` trusts), the migrations' version table, and the one function that
  deletes portal rows (``SECURITY DEFINER``: it checks the judged paths, writes the snapshot itself, then deletes).

No schema of the reconciler is on any session's ``search_path`` (:data:`annotation_reconciler.db.SEARCH_PATH_SQL`):
every ledger name in the package's SQL is schema-qualified.
"""

from enum import StrEnum

#: The one place the working ledger schema's name is set.
LEDGER_SCHEMA = "annotation_reconciler"
#: The schema of what the reconciler's roles may read but never write: the deletion audit, the version table.
AUDIT_SCHEMA = "annotation_reconciler_audit"
#: Both, in the order ``migrate`` creates them.
SCHEMAS = (LEDGER_SCHEMA, AUDIT_SCHEMA)


class Status(StrEnum):
    """Where a stale annotation stands in its life."""

    QUARANTINED = "quarantined"  # metadata gone; waiting for the grace period to pass
    RELEASED = "released"  # metadata seen again; nothing will be deleted
    PURGED = "purged"  # deleted from the portal tables; its snapshot is in the audit (DeletedAnnotation)
    HELD = "held"  # the mass-deletion guard stopped it; an operator must approve
    RESTORED = "restored"  # purged, then put back from its snapshot by an operator (`restore`)


class Source(StrEnum):
    """Which path found the annotation stale."""

    EVENT = "event"
    SCAN = "scan"
    IMPORTER = "importer"
    CLI = "cli"


OPEN_STATUSES = (Status.QUARANTINED.value, Status.HELD.value)
#: :data:`OPEN_STATUSES` as an SQL list, for queries: ``WHERE q.status IN {OPEN_STATUS_LIST}`` (a literal, so SQL
#: text is formatted from constants only; tests/unit/test_ledger_models.py checks it matches). The partial
#: indexes' predicates, and the ON CONFLICT clause that names one, stay literal: PostgreSQL matches them as written.
#: The vocabulary is here, not in ``models.py``, so that the SQL modules need not import the ORM (a cold start).
OPEN_STATUS_LIST = "('quarantined', 'held')"
