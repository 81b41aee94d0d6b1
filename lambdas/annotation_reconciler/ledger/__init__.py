"""The reconciler's own tables (the quarantine ledger) and their Alembic migrations.

They live in their own schema, :data:`LEDGER_SCHEMA`, never in ``public``: the reconciler's role
needs CREATE only there (CREATE on ``public`` would let it plant functions the portal owner's
queries resolve to, the CVE-2018-1058 pattern). Every engine made by
:func:`annotation_reconciler.db.make_engine` puts this schema first on its ``search_path``, so the
SQL of the ledger and of the portal (in ``public``) stays unqualified.
"""

#: The one place the ledger schema's name is set.
LEDGER_SCHEMA = "annotation_reconciler"
