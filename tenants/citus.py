"""What the schema must hold for its tenant-owned tables to be distributed by tenant_id on Citus,
found by introspection of the database, and the statements that distribute them (docs/citus.md).

A tenant-owned table is one with a `tenant_id` column (as for row-level security, tenants/rls.py).
Citus needs, for each of them:

- its primary key and every unique constraint, unique index (partial ones too) and exclusion
  constraint to hold tenant_id;
- every foreign key to another tenant-owned table to hold tenant_id on both sides, at the same
  position, with no SET NULL / SET DEFAULT action on delete or update and no CASCADE on update
  (Citus refuses those on a key that holds the distribution column);

and, of the global tables (every other table): none may refer to a tenant-owned table (a
reference table cannot point into a distributed one), and none that a tenant-owned table refers
to may stay a local table. `key_problems()` lists what breaks these rules;
tests/isolation/test_citus_ready_schema.py asserts there is nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

DISTRIBUTION_COLUMN = "tenant_id"
# The table every other tenant-owned table is colocated with (tenants.keys.citus_distribute).
COLOCATION_ANCHOR = "tenants_membership"

# Global tables that stay plain tables of the coordinator on Citus. Every other global table is a
# reference table (a copy on every node, so a distributed table may refer to it and join it).
LOCAL_TABLES = {
    "django_migrations": "Django's record of applied migrations: only `migrate` reads it",
    "django_session": "written at every login and read per request; nothing refers to it",
}

# confdeltype / confupdtype of pg_constraint
_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


@dataclass(frozen=True)
class UniqueKey:
    table: str
    name: str
    kind: str  # "primary key", "unique", "exclusion"
    columns: tuple[str | None, ...]  # None: an expression


@dataclass(frozen=True)
class ForeignKey:
    table: str
    name: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    on_delete: str
    on_update: str


def _namespace(schema: str | None) -> tuple[str, list]:
    if schema is None:
        return "current_schema()::regnamespace", []
    return "to_regnamespace(%s)", [schema]


def tables(connection, schema: str | None = None) -> dict[str, bool]:
    """table -> whether it is tenant-owned (has a tenant_id column), for the ordinary and
    partitioned tables of the schema (the current one unless named)."""
    namespace, params = _namespace(schema)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT c.relname, EXISTS (
                SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                AND NOT a.attisdropped AND a.attname = %s)
            FROM pg_class c
            WHERE c.relnamespace = {namespace} AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            ORDER BY c.relname
            """,
            [DISTRIBUTION_COLUMN, *params],
        )
        return dict(cursor.fetchall())


def unique_keys(connection, schema: str | None = None) -> list[UniqueKey]:
    """Primary keys, unique constraints and indexes (partial ones included) and exclusion
    constraints, with their key columns (not the INCLUDE ones)."""
    namespace, params = _namespace(schema)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT t.relname, i.relname,
                   CASE WHEN x.indisprimary THEN 'primary key'
                        WHEN x.indisexclusion THEN 'exclusion' ELSE 'unique' END,
                   ARRAY(SELECT a.attname FROM generate_subscripts(x.indkey, 1) AS k
                         LEFT JOIN pg_attribute a
                           ON a.attrelid = x.indrelid AND a.attnum = x.indkey[k]
                         WHERE k < x.indnkeyatts ORDER BY k)
            FROM pg_index x
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_class i ON i.oid = x.indexrelid
            WHERE t.relnamespace = {namespace} AND t.relkind IN ('r', 'p')
              AND (x.indisunique OR x.indisprimary OR x.indisexclusion)
            ORDER BY t.relname, i.relname
            """,
            params,
        )
        return [UniqueKey(t, n, k, tuple(cols)) for t, n, k, cols in cursor.fetchall()]


def foreign_keys(connection, schema: str | None = None) -> list[ForeignKey]:
    namespace, params = _namespace(schema)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT t.relname, k.conname,
                   ARRAY(SELECT a.attname FROM generate_subscripts(k.conkey, 1) AS n
                         JOIN pg_attribute a
                           ON a.attrelid = k.conrelid AND a.attnum = k.conkey[n] ORDER BY n),
                   f.relname,
                   ARRAY(SELECT a.attname FROM generate_subscripts(k.confkey, 1) AS n
                         JOIN pg_attribute a
                           ON a.attrelid = k.confrelid AND a.attnum = k.confkey[n] ORDER BY n),
                   k.confdeltype, k.confupdtype
            FROM pg_constraint k
            JOIN pg_class t ON t.oid = k.conrelid
            JOIN pg_class f ON f.oid = k.confrelid
            WHERE k.contype = 'f' AND t.relnamespace = {namespace} AND k.conparentid = 0
            ORDER BY 1, 2
            """,
            params,
        )
        return [
            ForeignKey(t, n, tuple(c), ft, tuple(fc), _ACTIONS[d], _ACTIONS[u])
            for t, n, c, ft, fc, d, u in cursor.fetchall()
        ]


def key_problems(connection, schema: str | None = None) -> list[str]:
    """Every way in which the schema breaks the rules above, one sentence each; empty when its
    tenant-owned tables can be distributed by tenant_id."""
    owned = tables(connection, schema)
    problems = []
    keyed = {k.table for k in unique_keys(connection, schema) if k.kind == "primary key"}
    for table, tenant in owned.items():
        if tenant and table not in keyed:
            problems.append(f"{table} has no primary key (Citus needs one holding tenant_id)")
    for key in unique_keys(connection, schema):
        if owned.get(key.table) and DISTRIBUTION_COLUMN not in key.columns:
            columns = ", ".join(c or "(expression)" for c in key.columns)
            problems.append(
                f"{key.table}: {key.kind} {key.name} ({columns}) does not hold tenant_id"
            )
    for fk in foreign_keys(connection, schema):
        table, target = fk.table, fk.target
        described = (
            f"{table}: foreign key {fk.name} ({', '.join(fk.columns)}) -> "
            f"{target} ({', '.join(fk.target_columns)})"
        )
        if owned.get(table) and owned.get(target):
            pairs = list(zip(fk.columns, fk.target_columns, strict=True))
            if (DISTRIBUTION_COLUMN, DISTRIBUTION_COLUMN) not in pairs:
                problems.append(f"{described} does not pair tenant_id with tenant_id")
            if fk.on_delete in ("SET NULL", "SET DEFAULT"):
                problems.append(f"{described} is ON DELETE {fk.on_delete}")
            if fk.on_update in ("SET NULL", "SET DEFAULT", "CASCADE"):
                problems.append(f"{described} is ON UPDATE {fk.on_update}")
        elif owned.get(target):
            problems.append(f"{described}: a global table refers to a tenant-owned one")
        elif target in LOCAL_TABLES or table in LOCAL_TABLES:
            problems.append(
                f"{described}: {target if target in LOCAL_TABLES else table} "
                "is to stay a local table (LOCAL_TABLES), so nothing may refer to it"
            )
    return problems


def _ordered(names: list[str], refers: dict[str, set[str]]) -> list[str]:
    """`names` with every table after the tables it refers to (alphabetical otherwise)."""
    done: list[str] = []
    pending = sorted(names)
    while pending:
        ready = [n for n in pending if not refers.get(n, set()) & (set(pending) - {n})]
        if not ready:  # a cycle: Citus takes the rest in any order only with its foreign keys
            raise ValueError(f"foreign keys form a cycle among {pending}")
        done.append(ready[0])
        pending.remove(ready[0])
    return done


def citus_tables(connection) -> set[str]:
    """The tables Citus already knows (distributed, reference, local-managed); none without
    Citus."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return set()
        cursor.execute("SELECT logicalrelid::regclass::text FROM pg_dist_partition")
        return {name.strip('"') for (name,) in cursor.fetchall()}


def distribution_statements(connection, schema: str | None = None) -> list[str]:
    """The SQL that distributes the schema, each statement on its own, in four steps:

    1. drop the foreign keys between tenant-owned tables (while one end is a local table, Citus
       refuses them; those of tables already distributed are left alone);
    2. make the global tables reference tables (but LOCAL_TABLES), each after those it refers to;
    3. distribute the tenant-owned tables by tenant_id, all colocated with COLOCATION_ANCHOR;
    4. add the foreign keys again, NOT VALID, then validate them (reads and writes go on).

    Tables Citus already knows are left out, so that after a release that adds a table only its
    statements remain. For the coordinator, once `migrate` made the schema there."""
    owned = tables(connection, schema)
    done = citus_tables(connection)
    refers: dict[str, set[str]] = {}
    for fk in foreign_keys(connection, schema):
        refers.setdefault(fk.table, set()).add(fk.target)
    between = [
        fk
        for fk in foreign_keys(connection, schema)
        if owned.get(fk.table) and owned.get(fk.target) and not {fk.table, fk.target} <= done
    ]
    definitions = _constraint_definitions(connection, [fk.name for fk in between])
    statements = [f'ALTER TABLE "{fk.table}" DROP CONSTRAINT "{fk.name}";' for fk in between]
    reference = [t for t, tenant in owned.items() if not tenant and t not in LOCAL_TABLES]
    statements += [
        f"SELECT create_reference_table('{t}');"
        for t in _ordered(reference, refers)
        if t not in done
    ]
    distributed = _ordered([t for t, tenant in owned.items() if tenant], refers)
    if COLOCATION_ANCHOR in distributed:
        distributed.remove(COLOCATION_ANCHOR)
        distributed.insert(0, COLOCATION_ANCHOR)
    for table in distributed:
        if table in done:
            continue
        colocate = "none" if table == COLOCATION_ANCHOR else COLOCATION_ANCHOR
        statements.append(
            f"SELECT create_distributed_table('{table}', '{DISTRIBUTION_COLUMN}', "
            f"colocate_with => '{colocate}');"
        )
    for fk in between:
        statements.append(
            f'ALTER TABLE "{fk.table}" ADD CONSTRAINT "{fk.name}" {definitions[fk.name]} NOT VALID;'
        )
        statements.append(f'ALTER TABLE "{fk.table}" VALIDATE CONSTRAINT "{fk.name}";')
    return statements


def _constraint_definitions(connection, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conname = ANY(%s)",
            [names],
        )
        return dict(cursor.fetchall())
