"""Bulk moves of tenant rows through COPY, under row-level security.

`copy_insert`: fast inserts of many rows into a tenant table: COPY into a temporary table, then one
INSERT … SELECT. (COPY FROM straight into a table with row-level security is not allowed; the
INSERT goes through the table's policies like any other.) Much faster than Django's bulk_create for
wide rows, and no model instances.
`copy_out`: a query's rows streamed out with COPY TO STDOUT (exports, model training)."""

from __future__ import annotations

import csv
import io
import json
import secrets
from datetime import date, datetime
from decimal import Decimal

from django.db import connection, models, transaction

# Written by csv as Postgres reads them (float NaN and infinities as nan / inf, which float8
# and numeric accept); everything else goes through _cell.
_AS_IS = frozenset({int, float, str, Decimal})


def _cell(value, null: str):
    if value is None:
        return null
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return "NaN"
    return value


def copy_insert(model: type[models.Model], rows: list[dict]) -> int:
    """Insert `rows` (dicts of field attnames, e.g. `product_id`) into `model`'s table; fields
    a row leaves out take the field's default. Returns the number of rows inserted."""
    if not rows:
        return 0
    fields = [f for f in model._meta.concrete_fields if not f.primary_key and not f.generated]
    defaults = {f.attname: f.get_default() for f in fields if f.has_default()}
    for f in fields:
        if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
            defaults[f.attname] = None  # filled below with the database's now()
    columns = [f.attname for f in fields]
    stamped = [
        f.attname
        for f in fields
        if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # NULL is a marker no text can be by chance (with the usual \N, a text "\N" from a shop
    # or an integrator would have been stored as NULL, or failed a NOT NULL column).
    null, missing = f"NULL-{secrets.token_hex(12)}", object()
    for row in rows:
        writer.writerow(
            [
                v
                if type(v := row.get(c, missing)) in _AS_IS
                else _cell(defaults.get(c) if v is missing else v, null)
                for c in columns
            ]
        )
    buffer.seek(0)
    table = model._meta.db_table
    stage = f"_stage_{secrets.token_hex(4)}"
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    select = ", ".join("now()" if c in stamped else connection.ops.quote_name(c) for c in columns)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {quoted} FROM {table} WITH NO DATA"
        )
        cur.cursor.copy_expert(
            f"COPY {stage} ({quoted}) FROM STDIN WITH (FORMAT csv, NULL '{null}')", buffer
        )
        cur.execute(f"INSERT INTO {table} ({quoted}) SELECT {select} FROM {stage}")
        return cur.rowcount


def copy_out(cur, sql: str, out, options: str = "FORMAT csv") -> None:
    """Stream `COPY (sql) TO STDOUT` into the file-like `out`, under the current tenant's
    row-level security. Call inside a transaction: a raw COPY bypasses the backend's statement
    prefix, so a plain statement first sets the tenant for the transaction (without it, a COPY
    that opened the transaction saw no rows at all)."""
    if connection.get_autocommit():
        raise RuntimeError("copy_out needs a transaction (wrap it in transaction.atomic())")
    cur.execute("SELECT 1")
    cur.cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH ({options})", out)


def copy_columns(query: str, width: int, params=()):
    """The rows of `query` (`width` columns of numbers or booleans, none NULL; `params` bound
    as in cursor.execute) as a float64 array of shape (rows, width), read with one binary COPY
    and parsed by numpy: every column is cast to float8 in SQL, so each row has the same layout
    (a 2-byte field count, then a 4-byte length and 8 bytes of value per column, big-endian)."""
    import numpy as np
    from django.db import connection

    columns = ", ".join(f"c{i}::float8" for i in range(width))
    names = ", ".join(f"c{i}" for i in range(width))
    buffer = io.BytesIO()
    with transaction.atomic(), connection.cursor() as cur:
        sql = cur.mogrify(f"SELECT {columns} FROM ({query}) AS q ({names})", params).decode()
        copy_out(cur, sql, buffer, "FORMAT binary")
    raw = buffer.getbuffer()
    start = 19 + int.from_bytes(raw[15:19], "big")  # signature, flags, header extension
    row = [("n", ">i2")] + [
        (f, t) for i in range(width) for f, t in ((f"l{i}", ">i4"), (f"v{i}", ">f8"))
    ]
    dtype = np.dtype(row)
    body = len(raw) - start - 2  # the file ends with a 2-byte -1
    if body < 0 or body % dtype.itemsize or bytes(raw[-2:]) != b"\xff\xff":
        raise ValueError("a NULL or an unexpected column in a numeric COPY")
    records = np.frombuffer(raw, dtype=dtype, count=body // dtype.itemsize, offset=start)
    if len(records) and (
        (records["n"] != width).any() or any((records[f"l{i}"] != 8).any() for i in range(width))
    ):
        raise ValueError("a NULL or an unexpected column in a numeric COPY")
    return np.stack([records[f"v{i}"].astype(np.float64) for i in range(width)], axis=1)
