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

#: The one place the working ledger schema's name is set.
LEDGER_SCHEMA = "annotation_reconciler"
#: The schema of what the reconciler's roles may read but never write: the deletion audit, the version table.
AUDIT_SCHEMA = "annotation_reconciler_audit"
#: Both, in the order ``migrate`` creates them.
SCHEMAS = (LEDGER_SCHEMA, AUDIT_SCHEMA)
