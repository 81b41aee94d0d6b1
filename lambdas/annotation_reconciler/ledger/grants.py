"""The least-privilege SQL an owner runs for the reconciler's database role (``annotation-reconciler grants``).

What the role gets, and nothing else:

- the ledger schema: USAGE and CREATE (``migrate`` creates the ledger's tables there, owned by the
  role), and SELECT/INSERT/UPDATE/DELETE on the tables and sequences already in it (an owner may
  have run ``migrate`` first);
- ``public``: USAGE, SELECT on the portal tables it reads, DELETE on ``annotation`` and its four
  child tables. No CREATE on ``public`` (CVE-2018-1058: a function planted there would run with the
  rights of the portal owner's sessions), no INSERT or UPDATE on any portal table.

A narrower role for the events Lambda gets the same reads and the ledger rows, no DELETE on the portal
and no CREATE anywhere.
"""

from __future__ import annotations

import re

from annotation_reconciler.ledger import LEDGER_SCHEMA
from annotation_reconciler.ledger.migrate import INDEX_SQL
from annotation_reconciler.portal.models import ANNOTATION_CHILD_TABLES

#: The portal tables the reconciler reads: the annotations it checks and deletes, and a run's dataset.
READ_TABLES = ("run", "annotation", *ANNOTATION_CHILD_TABLES)
#: The portal tables it deletes from (children first when it deletes).
DELETE_TABLES = ("annotation", *ANNOTATION_CHILD_TABLES)

_ROLE_RE = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")


def check_role(name: str) -> str:
    """A role name safe to write unquoted into SQL: lower-case letters, digits, ``_`` and ``$``."""
    if not _ROLE_RE.match(name):
        raise ValueError(
            f"{name!r} is not a plain role name: use lower-case letters, digits and underscores "
            "(at most 63, not starting with a digit), e.g. annotation_reconciler"
        )
    return name


def grants_sql(role: str, *, events_role: str | None = None) -> str:
    """The SQL the owner of the portal's tables runs, once, before or after the first ``migrate``."""
    role = check_role(role)
    schema = LEDGER_SCHEMA
    reads, deletes = ", ".join(READ_TABLES), ", ".join(DELETE_TABLES)
    lines = [
        f"-- annotation-reconciler: the rights of the database role {role}.",
        "-- Run as the owner of the portal's tables (and of the database); safe to run again.",
        "-- Either order works: before the first `annotation-reconciler migrate` (which then runs as the role and",
        "-- creates the ledger's tables, owned by it) or after an owner ran it (the grants then cover them).",
        f"CREATE SCHEMA IF NOT EXISTS {schema};",
        f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role};",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role};",
        "-- The portal's tables: read what it checks, delete annotations and their children; never INSERT or UPDATE.",
        f"GRANT USAGE ON SCHEMA public TO {role};",
        f"GRANT SELECT ON {reads} TO {role};",
        f"GRANT DELETE ON {deletes} TO {role};",
        "-- No CREATE on public: on PostgreSQL 14 and older every role has it unless the owner ran",
        "-- REVOKE CREATE ON SCHEMA public FROM PUBLIC;  (CVE-2018-1058; PostgreSQL 15 made it the default)",
        "-- The reconciler's lookups need an index the role may not create on a table it does not own:",
        f"-- {INDEX_SQL};",
    ]
    if events_role:
        events = check_role(events_role)
        lines += [
            f"-- The events Lambda's role {events}: same reads and ledger rows; no DELETE on the portal, no CREATE.",
            f"GRANT USAGE ON SCHEMA {schema} TO {events};",
            f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {schema} TO {events};",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {events};",
            f"-- for the ledger tables {role} creates later (the owner running this must be a member of {role})",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE ON TABLES "
            f"TO {events};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES "
            f"TO {events};",
            f"GRANT USAGE ON SCHEMA public TO {events};",
            f"GRANT SELECT ON {reads} TO {events};",
        ]
    return "\n".join(lines) + "\n"
