"""Writing a run's clean rows: one set-based statement per import, built from the format.

`INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE (old) IS DISTINCT FROM (new)`, so a row that
did not change is not rewritten, and `RETURNING (xmax = 0)` tells created from updated. The
format says everything that differs per kind (formats.py): the table, the key, each column's
value for a new row, which columns an update rewrites, the insert order, and when a plain
INSERT is safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg2.errors
from django.db import IntegrityError, transaction

from ..formats import PRODUCTS
from .parse import name_sql, q
from .results import MAX_REPORTED_ERRORS, RowError

if TYPE_CHECKING:
    from .run import ImportRun


def create_stub_products(run: ImportRun) -> None:
    """Products for SKUs that sales or offers name but the catalog lacks, marked as stubs."""
    t, clean = int(run.tenant.pk), run.clean
    run.cur.execute(
        f"""
        INSERT INTO {PRODUCTS.table} AS t (tenant_id, sku, title, description, category, brand,
            attributes, price, currency, active, created_at, updated_at)
        SELECT DISTINCT ON (v_sku) {t}, v_sku, v_sku, '', '', '',
            '{{"stub": true}}'::jsonb, v_price, {q(run.tenant.default_currency)}, true, now(), now()
        FROM {clean} WHERE product_id IS NULL AND errs = '{{}}'
        ORDER BY v_sku, line DESC
        ON CONFLICT (tenant_id, sku) DO NOTHING
        """
    )
    run.stubs = max(run.cur.rowcount, 0)
    run.cur.execute(
        f"UPDATE {clean} c SET product_id = p.id FROM {PRODUCTS.table} p "
        f"WHERE c.product_id IS NULL AND p.tenant_id = {t} AND p.sku = c.v_sku"
    )


def one_spelling(run: ImportRun) -> None:
    """Spellings of a competitor's name (the column of type "name", formats.Column) that differ
    only in case (their white space already read as one space, `parse.name_sql`) are one
    competitor: each becomes the tenant's spelling of it in
    CompetitorName. A name it has none of yet gets one there first: the spelling the tenant's
    stored readings have most of (each read as an import reads a name, so a reading stored
    before white space was read so counts, spelt as it is read now), else the file's most
    frequent (then its first line's). Only such new names read the stored readings (a scan of
    them, once per new competitor); the others are looked up in the tenant's few
    CompetitorName rows, and only the rows spelt otherwise are rewritten. Two rows of the file
    that then share a key are duplicates, reported as such."""
    from ..models import CompetitorName
    from ..spellings import key_sql  # (it imports the importer's parse)

    t, cur, names = int(run.tenant.pk), run.cur, CompetitorName._meta.db_table
    for col in run.fmt.columns:
        if col.type != "name" or col.name not in run.mapping.present:
            continue
        v, stored = f"v_{col.name}", run.fmt.target(col.name)
        cur.execute(  # the file's spellings (a feed has a few)
            f"SELECT lower({v}), {v}, count(*), min(line) FROM {run.clean} "
            f"WHERE errs = '{{}}' AND {v} IS NOT NULL GROUP BY {v}"
        )
        spellings = cur.fetchall()
        keys = sorted({key for key, *_ in spellings})
        lookup = f"SELECT key, name FROM {names} WHERE tenant_id = {t} AND key = ANY(%s)"
        cur.execute(lookup, [keys])
        known = dict(cur.fetchall())
        new = [key for key in keys if key not in known]
        if new:
            cur.execute(
                f"""
                WITH kept AS (  -- (the stored names read as the file's: 0.5 s a million)
                    SELECT {key_sql(stored)} AS k, {name_sql(stored)} AS name, count(*) AS n
                    FROM {run.fmt.table}
                    WHERE tenant_id = {t} AND {key_sql(stored)} = ANY(%s)
                    GROUP BY 1, 2),
                file AS (
                    SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[])
                    AS f (k, name, n, first) WHERE k = ANY(%s)),
                chosen AS (
                    SELECT DISTINCT ON (k) k, name FROM (
                        SELECT k, name, 0 AS src, n, 0 AS first FROM kept
                        UNION ALL SELECT k, name, 1, n, first FROM file) AS c
                    ORDER BY k, src, n DESC, first, name)
                INSERT INTO {names} (tenant_id, key, name) SELECT {t}, k, name FROM chosen
                ON CONFLICT (tenant_id, key) DO NOTHING
                """,
                [new, *(list(column) for column in zip(*spellings, strict=True)), new],
            )
            cur.execute(lookup, [new])  # (another import's, made meanwhile, stands)
            known.update(cur.fetchall())
        renamed = [(name, known.get(key, name)) for key, name, *_ in spellings]
        renamed = [(spelt, to) for spelt, to in renamed if spelt != to]
        if renamed:
            cur.execute(
                f"UPDATE {run.clean} AS r SET {v} = m.spelling FROM unnest(%s::text[], %s::text[]) "
                f"AS m (spelt, spelling) WHERE r.{v} = m.spelt AND r.errs = '{{}}'",
                [[a for a, _ in renamed], [b for _, b in renamed]],
            )


def upsert(run: ImportRun) -> tuple[int, int]:
    """Write the valid rows of the clean table; (created, updated)."""
    fmt, cur, present = run.fmt, run.cur, set(run.mapping.present)
    values = {c.name: f"v_{c.name}" for c in fmt.columns if c.name in present}
    values["tenant_currency"] = q(run.tenant.default_currency)

    def value(name: str) -> str:
        """A file column's value for a new row: the cell, else its default, else NULL."""
        if name == "sku" and fmt.names_product:
            return "product_id"
        default = fmt.column(name).default
        default = default.format(**values) if default else None
        if name not in present:
            return default or "NULL"
        return f"coalesce(v_{name}, {default})" if default else f"v_{name}"

    # The key's columns first, then the others in the format's order.
    names = [*fmt.key, *(c.name for c in fmt.columns if c.name not in fmt.key)]
    columns, select = [fmt.target(n) for n in names], [value(n) for n in names]
    rewritten = [
        fmt.target(n)
        for n in names
        if n not in fmt.key and (n in present or not fmt.update_present_only)
    ]
    sets = [f"{c} = EXCLUDED.{c}" for c in rewritten]
    old, new = [f"t.{c}" for c in rewritten], [f"EXCLUDED.{c}" for c in rewritten]
    if fmt.extra_to_attributes:
        columns.append("attributes")
        select.append("v_attributes")
        sets.append("attributes = t.attributes || EXCLUDED.attributes")
        old.append("t.attributes")
        new.append("t.attributes || EXCLUDED.attributes")
    if fmt.timestamps:
        columns += ["created_at", "updated_at"]
        select += ["now()", "now()"]
        sets.append("updated_at = now()")
    order = ", ".join(_clean_column(run, n) for n in fmt.insert_order)
    sql = f"""
        INSERT INTO {fmt.table} AS t (tenant_id, {", ".join(columns)})
        SELECT {int(run.tenant.pk)}, {", ".join(select)}
        FROM {run.clean} WHERE errs = '{{}}'
        {f"ORDER BY {order}" if order else ""}
    """
    if fmt.plain_insert_outside and _nothing_stored_in_range(run, fmt.plain_insert_outside):
        try:  # nothing to update: a plain INSERT is about twice as fast
            with transaction.atomic():  # (a savepoint)
                cur.execute(sql)
            return cur.rowcount, 0
        except IntegrityError as exc:
            # Another import wrote into the range since (it commits first), or the file
            # repeats a key: the upsert below merges the first and reports the second.
            if not isinstance(exc.__cause__, psycopg2.errors.UniqueViolation):
                raise
    conflict = ", ".join(["tenant_id", *(fmt.target(k) for k in fmt.key)])
    sql += f"""
        ON CONFLICT ({conflict}) DO UPDATE SET {", ".join(sets)}
        WHERE ({", ".join(old)}) IS DISTINCT FROM ({", ".join(new)})
        RETURNING (xmax = 0) AS inserted
    """
    cur.execute(
        f"WITH ins AS ({sql}) SELECT count(*) FILTER (WHERE inserted), "
        f"count(*) FILTER (WHERE NOT inserted) FROM ins"
    )
    created, updated = cur.fetchone()
    return int(created), int(updated)


def _clean_column(run: ImportRun, name: str) -> str:
    """The clean table's column holding a file column's value."""
    target = run.fmt.target(name)
    return target if target != name else f"v_{name}"


def _nothing_stored_in_range(run: ImportRun, column: str) -> bool:
    """True when the tenant has no row at all in the file's range of `column` (a first
    import of the period)."""
    run.cur.execute(
        f"SELECT NOT EXISTS (SELECT 1 FROM {run.fmt.table} WHERE tenant_id = {int(run.tenant.pk)} "
        f"AND {column} BETWEEN (SELECT min(v_{column}) FROM {run.clean}) "
        f"AND (SELECT max(v_{column}) FROM {run.clean}))"
    )
    return bool(run.cur.fetchone()[0])


def duplicate_errors(run: ImportRun) -> None:
    """Report the rows that repeat another row's key (ON CONFLICT refuses to touch a row twice)."""
    fmt, cur, clean, result = run.fmt, run.cur, run.clean, run.result
    names = [k for k in fmt.key if k in run.mapping.present]
    key = ", ".join(_clean_column(run, k) for k in names)
    cur.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {clean} WHERE errs = '{{}}' GROUP BY {key} "
        f"HAVING count(*) > 1) d"
    )
    groups = cur.fetchone()[0]
    cur.execute(
        f"""
        SELECT lines FROM (
            SELECT array_agg(line ORDER BY line) AS lines FROM {clean} WHERE errs = '{{}}'
            GROUP BY {key} HAVING count(*) > 1) d
        ORDER BY lines[1] LIMIT {MAX_REPORTED_ERRORS}
        """
    )
    label = " + ".join(names)
    errors = []
    for (lines,) in cur.fetchall():
        for line in lines[1:]:
            errors.append(
                RowError(line, fmt.key[0], None, f"duplicate {label}: same as row {lines[0]}")
            )
    result.error_count = max(len(errors), groups)
    result.errors = errors[:MAX_REPORTED_ERRORS]
