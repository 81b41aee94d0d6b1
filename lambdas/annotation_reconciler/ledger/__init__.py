"""The reconciler's own tables (the quarantine ledger) and their Alembic migrations."""
