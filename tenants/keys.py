"""Migration operations that put tenant_id into the keys of tenant-owned tables (docs/citus.md).

Django's state keeps `id` as each model's primary key: the ORM looks rows up by it, and Django
supports no foreign key to a model with a composite primary key. In the database the PRIMARY KEY
is (tenant_id, id), and a foreign key between two tenant-owned tables is
(tenant_id, x_id) REFERENCES other (tenant_id, id), so that the tables can be distributed by
tenant_id on Citus. The model field of such a foreign key says `db_constraint=False` (a system
check, `tenants.E001`, insists) and its migration calls `tenant_foreign_key()`; a new
tenant-owned model's migration calls `tenant_primary_key()`. `tests/isolation/
test_citus_ready_schema.py` fails on any table that breaks the rule.

Both operations are plain RunSQL with their reverse, and idempotent, so that a large production
database can build the indexes and constraints online before the migration runs (`CREATE UNIQUE
INDEX CONCURRENTLY` under the name `tenant_key_index()` gives; the foreign key `NOT VALID`, then
`VALIDATE CONSTRAINT` as a superuser): the migration then only swaps the primary keys and leaves
the valid foreign keys alone. docs/citus.md says how.

Migrations call these functions: the SQL they return must never change. A different need gets a
new function.
"""

from __future__ import annotations

import hashlib

from django.db import migrations

MAX_NAME = 63  # Postgres truncates longer identifiers


def _name(*parts: str, suffix: str) -> str:
    name = "_".join(parts) + suffix
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.md5(name.encode()).hexdigest()[:8]  # noqa: S324 (a name, not a secret)
    return f"{name[: MAX_NAME - len(suffix) - 9]}_{digest}{suffix}"


def primary_key_name(table: str) -> str:
    """Postgres's own name for the table's primary key (what CREATE TABLE gave it)."""
    name = f"{table}_pkey"
    if len(name) > MAX_NAME:  # Postgres would have shortened it its own way
        raise ValueError(f"{table}: name its primary key explicitly")
    return name


def tenant_key_index(table: str) -> str:
    """The unique index on (tenant_id, id) that becomes the primary key; build it under this
    name beforehand (CONCURRENTLY) and the migration takes it as it is."""
    return _name(table, suffix="_tenant_pk")


def foreign_key_name(table: str, column: str) -> str:
    return _name(table, column, suffix="_tenant_fk")


def tenant_primary_key(table: str) -> migrations.RunSQL:
    """PRIMARY KEY (id) -> PRIMARY KEY (tenant_id, id), under the same constraint name. Nothing
    may refer to the table through a single-column foreign key any more (drop those first: the
    field's `db_constraint=False`)."""
    pkey, index = primary_key_name(table), tenant_key_index(table)
    return migrations.RunSQL(
        sql=[
            f'CREATE UNIQUE INDEX IF NOT EXISTS "{index}" ON "{table}" (tenant_id, id)',
            f'ALTER TABLE "{table}" DROP CONSTRAINT "{pkey}", '
            f'ADD CONSTRAINT "{pkey}" PRIMARY KEY USING INDEX "{index}"',
        ],
        reverse_sql=[
            f'ALTER TABLE "{table}" DROP CONSTRAINT "{pkey}", '
            f'ADD CONSTRAINT "{pkey}" PRIMARY KEY (id)',
        ],
        elidable=False,
    )


def tenant_foreign_key(table: str, column: str, target: str) -> migrations.RunSQL:
    """FOREIGN KEY (tenant_id, column) REFERENCES target (tenant_id, id), deferred to the end of
    the transaction as Django's own are. A null `column` is not checked (MATCH SIMPLE), as
    before. No ON DELETE action: Django's on_delete does that work (and Citus refuses SET NULL
    on a key that holds the distribution column).

    Added unless it exists (built beforehand), and checked against the rows already there
    unless it is valid. Row-level security is forced on the owner that runs the migrations, and
    Postgres checks a new foreign key's rows as that user: with no tenant set it would see no
    row and accept any. So both tables are not forced for the time of the check (this
    transaction holds them), then forced again as they were."""
    name = foreign_key_name(table, column)
    child, parent = f'"{table}"', f'"{target}"'
    add = (
        f'ALTER TABLE {child} ADD CONSTRAINT "{name}" FOREIGN KEY (tenant_id, "{column}") '
        f"REFERENCES {parent} (tenant_id, id) DEFERRABLE INITIALLY DEFERRED"
    )
    return migrations.RunSQL(
        sql=[
            f"""DO $$
DECLARE
  child_forced boolean := (SELECT relforcerowsecurity FROM pg_class
                           WHERE oid = '{child}'::regclass);
  parent_forced boolean := (SELECT relforcerowsecurity FROM pg_class
                            WHERE oid = '{parent}'::regclass);
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '{child}'::regclass
                 AND conname = '{name}' AND convalidated) THEN
    ALTER TABLE {child} NO FORCE ROW LEVEL SECURITY;
    ALTER TABLE {parent} NO FORCE ROW LEVEL SECURITY;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '{child}'::regclass
                   AND conname = '{name}') THEN
      {add};
    END IF;
    ALTER TABLE {child} VALIDATE CONSTRAINT "{name}";
    IF child_forced THEN ALTER TABLE {child} FORCE ROW LEVEL SECURITY; END IF;
    IF parent_forced THEN ALTER TABLE {parent} FORCE ROW LEVEL SECURITY; END IF;
  END IF;
END $$""",
        ],
        reverse_sql=[f'ALTER TABLE {child} DROP CONSTRAINT "{name}"'],
        elidable=False,
    )


def citus_distribute(table: str) -> migrations.RunSQL:
    """On a Citus coordinator, distribute a new tenant-owned table by tenant_id, colocated with
    the others (tenants_membership is one of them); on plain Postgres, nothing. For the migration
    that creates a tenant-owned model, after `tenant_primary_key()` and before
    `tenant_foreign_key()` (Citus refuses a foreign key from a local table to a distributed one).
    Its reverse does nothing: the reverse of the CreateModel drops the table on every node."""
    return migrations.RunSQL(
        sql=[
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN "
            "IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = "
            f"'\"{table}\"'::regclass) THEN PERFORM create_distributed_table('{table}', "
            "'tenant_id', colocate_with => 'tenants_membership'); END IF; END IF; END $$",
        ],
        reverse_sql=migrations.RunSQL.noop,
        elidable=False,
    )
