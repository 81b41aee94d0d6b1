"""The least-privilege SQL the portal's owner runs for the reconciler's roles (``annotation-reconciler grants``).

The owner of the portal's tables (on RDS the master user: CREATEROLE, not a superuser) owns everything of the
reconciler too: it runs this SQL and ``annotation-reconciler migrate``, in either order, with
``psql -v ON_ERROR_STOP=1``. The reconciler's roles create and own nothing:

- the working ledger (:data:`LEDGER_SCHEMA`): USAGE, and SELECT/INSERT/UPDATE/DELETE on its tables (the events
  role: no DELETE), now and for the tables later migrations add (default privileges of the owner);
- the audit (:data:`AUDIT_SCHEMA`): USAGE and SELECT only; the runtime role may also EXECUTE the deleting
  function, its only way to delete portal rows (it writes the snapshot itself);
- ``public``: USAGE, SELECT on the portal tables it reads; no DELETE, INSERT, UPDATE, TRUNCATE or CREATE anywhere.

What an earlier version gave is taken back: CREATE on the ledger schema, DELETE on the portal's tables, and the
ownership of whatever the role made (its migrated tables, or anything it planted: ``migrate``, ``restore`` and
``status`` then refuse until the owner drops what the migrations did not make, see ``ledger/integrity.py``).
The SQL ends by checking what it claims, and raises (stopping psql) where the database disagrees.
"""

from __future__ import annotations

import re

from annotation_reconciler.ledger import AUDIT_SCHEMA, LEDGER_SCHEMA
from annotation_reconciler.ledger.migrate import INDEX_SQL
from annotation_reconciler.portal.models import ANNOTATION_CHILD_TABLES

#: The portal tables the reconciler reads: the annotations it checks and deletes, and a run's dataset.
READ_TABLES = ("run", "annotation", *ANNOTATION_CHILD_TABLES)
#: The portal tables the deleting function deletes from (children first when it deletes); no role of the
#: reconciler holds DELETE on them itself.
DELETE_TABLES = ("annotation", *ANNOTATION_CHILD_TABLES)
#: The function through which the runtime role deletes (``ledger/migrations/versions/0006_…``).
DELETE_FUNCTION = "annotation_reconciler_audit.delete_annotations(integer[], text[], text, text, timestamptz)"
#: The tables of :data:`DELETE_TABLES` as an SQL array of ``regclass`` (for the closing check).
_DELETE_REGCLASSES = (
    "ARRAY['public.annotation', 'public.annotation_file', 'public.annotation_shape', 'public.annotation_author', "
    "'public.annotation_method_link']::regclass[]"
)

_ROLE_RE = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")


def check_role(name: str) -> str:
    """A role name safe to write unquoted into SQL: lower-case letters, digits, ``_`` and ``$``."""
    if not _ROLE_RE.match(name):
        raise ValueError(
            f"{name!r} is not a plain role name: use lower-case letters, digits and underscores "
            "(at most 63, not starting with a digit), e.g. annotation_reconciler"
        )
    return name


def _take_back(role: str) -> list[str]:
    """What an earlier version let ``role`` own or do, returned to the owner running the SQL."""
    ledger, audit = LEDGER_SCHEMA, AUDIT_SCHEMA
    portal = ", ".join(f"public.{t}" for t in READ_TABLES)
    return [
        f"-- {role}: take back whatever it owns (before this version it migrated, and owned, the ledger's tables).",
        "-- Needs the right to grant the role to yourself: CREATEROLE on PostgreSQL 15, ADMIN on the role from 16 on",
        "-- (the role's creator has it).",
        f"GRANT {role} TO CURRENT_USER;",
        f"REASSIGN OWNED BY {role} TO CURRENT_USER;",
        f"REVOKE {role} FROM CURRENT_USER;",
        f"REVOKE ALL ON SCHEMA {ledger}, {audit} FROM {role};",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {ledger}, {audit} FROM {role};",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {ledger}, {audit} FROM {role};",
        f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {ledger}, {audit} FROM {role};",
        f"REVOKE ALL ON {portal} FROM {role};",
    ]


def _check(role: str, *, may_delete: bool) -> list[str]:
    """A DO block that raises where ``role`` holds more, or less, than this SQL gives."""
    ledger, audit = LEDGER_SCHEMA, AUDIT_SCHEMA
    execute = "NOT " if may_delete else ""
    verdict = "may not" if may_delete else "may"
    return [
        "DO $check$ BEGIN",
        f"  IF has_schema_privilege('{role}', 'public', 'CREATE') THEN",
        f"    RAISE EXCEPTION '{role} may CREATE in schema public (CVE-2018-1058): run REVOKE CREATE ON SCHEMA public "
        "FROM PUBLIC as its owner, and revoke any grant to the role';",
        "  END IF;",
        f"  IF has_schema_privilege('{role}', '{ledger}', 'CREATE') OR has_schema_privilege('{role}', '{audit}', "
        "'CREATE') THEN",
        f"    RAISE EXCEPTION '{role} may still CREATE in a schema of the reconciler: it is a member of a role that "
        "may (revoke that membership)';",
        "  END IF;",
        "  IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
        f"             WHERE n.nspname IN ('{ledger}', '{audit}') AND c.relowner = '{role}'::regrole) THEN",
        f"    RAISE EXCEPTION '{role} still owns a relation in a schema of the reconciler';",
        "  END IF;",
        "  IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c",
        f"             WHERE c.oid = ANY ({_DELETE_REGCLASSES})",
        f"               AND (has_table_privilege('{role}', c.oid, 'DELETE') OR has_table_privilege('{role}', c.oid, "
        "'INSERT')",
        f"                    OR has_table_privilege('{role}', c.oid, 'UPDATE') OR has_table_privilege('{role}', "
        "c.oid, 'TRUNCATE'))) THEN",
        f"    RAISE EXCEPTION '{role} may still write a portal table directly (a membership or a grant to PUBLIC?)';",
        "  END IF;",
        f"  IF to_regprocedure('{DELETE_FUNCTION}') IS NOT NULL",
        f"     AND {execute}has_function_privilege('{role}', '{DELETE_FUNCTION}', 'EXECUTE') THEN",
        f"    RAISE EXCEPTION '{role} {verdict} execute the deleting function';",
        "  END IF;",
        "END $check$;",
    ]


def grants_sql(role: str, *, events_role: str | None = None) -> str:
    """The SQL the owner of the portal's tables runs (``psql -v ON_ERROR_STOP=1``), before or after ``migrate``,
    and again whenever it likes: every statement is idempotent."""
    role = check_role(role)
    events = check_role(events_role) if events_role else None
    if events == role:
        raise ValueError(f"--events-role must differ from --role ({role}): the events role may delete nothing")
    ledger, audit = LEDGER_SCHEMA, AUDIT_SCHEMA
    reads = ", ".join(f"public.{t}" for t in READ_TABLES)
    lines = [
        f"-- annotation-reconciler: the rights of the database role {role}"
        + (f" and of the events role {events}." if events else "."),
        "-- Run as the owner of the portal's tables (on RDS the master user), who also runs `annotation-reconciler",
        "-- migrate`, in either order: psql -v ON_ERROR_STOP=1 -f grants.sql. Safe to run again.",
        "-- Every step is checked at the end: a right the database holds beyond these raises an error.",
        "BEGIN;",
        f"CREATE SCHEMA IF NOT EXISTS {ledger};",
        f"CREATE SCHEMA IF NOT EXISTS {audit};",
        *_take_back(role),
        f"-- {role}: the working ledger's rows (now and in the tables later migrations add), nothing else there.",
        f"GRANT USAGE ON SCHEMA {ledger}, {audit} TO {role};",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {ledger} TO {role};",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {ledger} TO {role};",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {ledger} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role};",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {ledger} GRANT USAGE, SELECT ON SEQUENCES TO {role};",
        f"-- {role}: the audit, read only; deleting portal rows only through the function that writes the audit.",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {audit} TO {role};",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {audit} GRANT SELECT ON TABLES TO {role};",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {audit} TO {role};",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {audit} GRANT EXECUTE ON FUNCTIONS TO {role};",
        f"-- {role}: the portal's tables, read only.",
        f"GRANT USAGE ON SCHEMA public TO {role};",
        f"GRANT SELECT ON {reads} TO {role};",
    ]
    if events:
        lines += [
            *_take_back(events),
            f"-- {events} (the events Lambda): the working ledger's rows but DELETE, the portal's tables read only.",
            f"GRANT USAGE ON SCHEMA {ledger} TO {events};",
            f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {ledger} TO {events};",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {ledger} TO {events};",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {ledger} GRANT SELECT, INSERT, UPDATE ON TABLES TO {events};",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {ledger} GRANT USAGE, SELECT ON SEQUENCES TO {events};",
            f"GRANT USAGE ON SCHEMA public TO {events};",
            f"GRANT SELECT ON {reads} TO {events};",
        ]
    lines += [
        *_check(role, may_delete=True),
        *(_check(events, may_delete=False) if events else []),
        "COMMIT;",
        "-- The reconciler's lookups need an index on the portal's table; `migrate` creates it when missing",
        f"-- (CONCURRENTLY, outside any transaction): {INDEX_SQL};",
    ]
    return "\n".join(lines) + "\n"
