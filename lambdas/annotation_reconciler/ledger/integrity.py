"""Nothing in the reconciler's schemas but what its migrations made, owned by the role that runs them.

Before issue 24 the reconciler's runtime role could create objects in the ledger schema and owned the tables
it migrated: it could plant a function, an operator, a trigger or a table there that the portal owner's sessions
would run. ``annotation-reconciler grants`` takes the ownership back; this check finds what may have been
planted meanwhile. ``migrate``, ``restore`` and ``status`` refuse to go on while it finds anything (an
owner's session must never touch a planted trigger), and print what to drop::

    with engine.connect() as conn:
        problems = foreign_objects(conn)   # [] on a clean ledger
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from annotation_reconciler.errors import LedgerSchemaError
from annotation_reconciler.ledger import AUDIT_SCHEMA, LEDGER_SCHEMA, SCHEMAS

#: The tables the migrations make, by schema (their sequences, indexes and row types come with them).
TABLES = {
    LEDGER_SCHEMA: (
        "annotation_quarantine",
        "missing_annotation_file",
        "annotation_resurrection",
        "blind_prefix",
        "untracked_metadata",
    ),
    AUDIT_SCHEMA: ("deleted_annotation", "annotation_reconciler_alembic_version"),
}
#: The legacy place of the version table (before 0006 it lived in the working schema).
LEGACY_TABLES = {LEDGER_SCHEMA: ("annotation_reconciler_alembic_version",)}
#: The functions the migrations make: (schema, name, argument types as pg_get_function_identity_arguments says).
FUNCTIONS = {
    (
        AUDIT_SCHEMA,
        "delete_annotations",
        "p_ids integer[], p_paths text[], p_source text, p_reason text, p_now timestamp with time zone",
    ),
}

# One statement, read-only, over the catalogs (readable by every role): each row a (kind, name, why).
_FOREIGN = text("""
WITH s AS (SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY (CAST(:schemas AS text[]))),
known AS (SELECT c.oid FROM pg_catalog.pg_class c JOIN s ON s.oid = c.relnamespace
          JOIN unnest(CAST(:tschemas AS text[]), CAST(:tnames AS text[])) AS k(sch, name)
            ON k.sch = s.nspname AND k.name = c.relname
          WHERE c.relkind = 'r')
SELECT 'relation', s.nspname || '.' || c.relname, 'not made by the migrations'
FROM pg_catalog.pg_class c JOIN s ON s.oid = c.relnamespace
WHERE c.relkind NOT IN ('i', 'S', 't') AND c.oid NOT IN (SELECT oid FROM known)
UNION ALL
SELECT 'sequence', s.nspname || '.' || c.relname, 'not owned by a ledger table''s column'
FROM pg_catalog.pg_class c JOIN s ON s.oid = c.relnamespace
WHERE c.relkind = 'S' AND NOT EXISTS (
  SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
    AND d.refobjid IN (SELECT oid FROM known) AND d.deptype IN ('a', 'i'))
UNION ALL
SELECT 'index', s.nspname || '.' || c.relname, 'on a table the migrations did not make'
FROM pg_catalog.pg_class c JOIN s ON s.oid = c.relnamespace JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
WHERE c.relkind = 'i' AND i.indrelid NOT IN (SELECT oid FROM known)
UNION ALL
SELECT 'relation', s.nspname || '.' || c.relname, 'owned by ' || pg_catalog.pg_get_userbyid(c.relowner)
FROM pg_catalog.pg_class c JOIN s ON s.oid = c.relnamespace
WHERE c.relkind IN ('r', 'S') AND c.relowner <> (SELECT nspowner FROM pg_catalog.pg_namespace WHERE oid = s.oid)
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
       s.nspname || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')',
       CASE WHEN k.name IS NULL THEN 'not made by the migrations'
            WHEN p.proowner <> (SELECT nspowner FROM pg_catalog.pg_namespace WHERE oid = s.oid)
              THEN 'owned by ' || pg_catalog.pg_get_userbyid(p.proowner)
            ELSE 'executable by PUBLIC' END
FROM pg_catalog.pg_proc p JOIN s ON s.oid = p.pronamespace
LEFT JOIN unnest(CAST(:fschemas AS text[]), CAST(:fnames AS text[]), CAST(:fargs AS text[]))
  AS k(sch, name, args)
  ON k.sch = s.nspname AND k.name = p.proname AND k.args = pg_catalog.pg_get_function_identity_arguments(p.oid)
WHERE k.name IS NULL
   OR p.proowner <> (SELECT nspowner FROM pg_catalog.pg_namespace WHERE oid = s.oid)
   OR pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')
UNION ALL
SELECT 'operator', s.nspname || '.' || o.oprname || '(' || pg_catalog.format_type(o.oprleft, NULL) || ', '
       || pg_catalog.format_type(o.oprright, NULL) || ')', 'not made by the migrations'
FROM pg_catalog.pg_operator o JOIN s ON s.oid = o.oprnamespace
UNION ALL
SELECT 'type', s.nspname || '.' || t.typname, 'not made by the migrations'
FROM pg_catalog.pg_type t JOIN s ON s.oid = t.typnamespace
WHERE t.typrelid = 0 AND NOT EXISTS (
  SELECT 1 FROM pg_catalog.pg_type e WHERE e.oid = t.typelem AND e.typrelid <> 0)
UNION ALL
SELECT 'trigger', tg.tgname || ' on ' || s.nspname || '.' || c.relname, 'not made by the migrations'
FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid JOIN s ON s.oid = c.relnamespace
WHERE NOT tg.tgisinternal
UNION ALL
SELECT 'rule', r.rulename || ' on ' || s.nspname || '.' || c.relname, 'not made by the migrations'
FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class JOIN s ON s.oid = c.relnamespace
UNION ALL
SELECT 'policy', p.polname || ' on ' || s.nspname || '.' || c.relname, 'not made by the migrations'
FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid JOIN s ON s.oid = c.relnamespace
UNION ALL
SELECT 'collation', s.nspname || '.' || co.collname, 'not made by the migrations'
FROM pg_catalog.pg_collation co JOIN s ON s.oid = co.collnamespace
UNION ALL
SELECT 'conversion', s.nspname || '.' || cv.conname, 'not made by the migrations'
FROM pg_catalog.pg_conversion cv JOIN s ON s.oid = cv.connamespace
UNION ALL
SELECT 'schema right', s.nspname, 'CREATE granted to ' || pg_catalog.pg_get_userbyid(a.grantee)
FROM s JOIN pg_catalog.pg_namespace n ON n.oid = s.oid
CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
WHERE a.privilege_type = 'CREATE' AND a.grantee <> n.nspowner
ORDER BY 1, 2
""")


def foreign_objects(conn: Connection) -> list[str]:
    """Every object in the reconciler's schemas its migrations did not make (or that is owned by another role
    than the schema's owner, or a function PUBLIC may execute), as ``kind name: why``; ``[]`` when clean."""
    tables = [(s, t) for spec in (TABLES, LEGACY_TABLES) for s, names in spec.items() for t in names]
    rows = conn.execute(
        _FOREIGN,
        {
            "schemas": list(SCHEMAS),
            "tschemas": [s for s, _ in tables],
            "tnames": [t for _, t in tables],
            "fschemas": [s for s, _, _ in FUNCTIONS],
            "fnames": [n for _, n, _ in FUNCTIONS],
            "fargs": [a for _, _, a in FUNCTIONS],
        },
    ).all()
    return [f"{kind} {name}: {why}" for kind, name, why in rows]


def require_clean(conn: Connection, command: str) -> None:
    """Refuse ``command`` (raise :class:`LedgerSchemaError`) while the reconciler's schemas hold a foreign object."""
    found = foreign_objects(conn)
    if found:
        shown = "; ".join(found[:10]) + (f"; and {len(found) - 10} more" if len(found) > 10 else "")
        raise LedgerSchemaError(
            f"refusing to {command}: the reconciler's schemas ({', '.join(SCHEMAS)}) hold objects its migrations did "
            f"not make, or rights they do not give: {shown}. A role that could once create there may have planted "
            "them to run as you: inspect and drop each (as the owner), apply `annotation-reconciler grants` again, "
            "then retry"
        )
