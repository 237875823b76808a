"""The one import service: CSV, XLSX and JSON rows into products, sales and competitor offers.

How it stays fast and safe:
1. The file is streamed (never read whole) into a temporary staging table of text columns with
   Postgres `COPY`, in the file's own encoding and delimiter; the staging table numbers the rows.
2. One set-based SQL pass parses every cell (money with currency symbols and thousands separators,
   decimal commas on request, whole numbers, dates, timestamps, booleans) and records, per row,
   the checks it fails.
3. If any row is invalid, nothing is written (unless `skip_invalid`): the report names the row
   (line number in the file), the column, the value and the reason, for the first 1,000 errors,
   with the total count.
4. Otherwise one `INSERT ... ON CONFLICT DO UPDATE ... WHERE IS DISTINCT FROM` upserts everything
   and counts created, updated and unchanged rows. The same file twice changes nothing.
Everything runs in one transaction, under the tenant's row-level security.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from django.db import DataError, IntegrityError, ProgrammingError, connection, transaction

from tenants.context import require_current_tenant

from .formats import Column, Format, get_format, normalise_header, suggest

MAX_REPORTED_ERRORS = 1000
SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
IGNORE = "__ignore__"
EMPTY_JSON = "'{}'::jsonb"


@dataclass(frozen=True)
class ImportOptions:
    decimal_comma: bool = False  # "1.299,00 €": dot groups thousands, comma marks decimals
    create_missing_products: bool = False  # sales/offers for unknown SKUs create stub products
    skip_invalid: bool = False  # land the valid rows and report the others
    column_map: dict[str, str] = field(default_factory=dict)  # file header -> canonical or IGNORE


@dataclass(frozen=True)
class RowError:
    row: int | None  # line number in the file (1 = header); for JSON rows, the array index
    column: str | None
    value: str | None
    reason: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "value": self.value, "reason": self.reason}

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "file"
        col = f", column {self.column}" if self.column else ""
        val = f" ({self.value!r})" if self.value not in (None, "") else ""
        return f"{where}{col}{val}: {self.reason}"


@dataclass
class ImportResult:
    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ","
    headers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def summary(self) -> str:
        text = (
            f"{self.kind}: {self.rows} rows, {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged"
        )
        if self.skipped:
            text += f", {self.skipped} invalid rows skipped"
        return text


class ImportFailed(Exception):
    """Invalid input: nothing was written. `result.errors` says where and why."""

    def __init__(self, result: ImportResult):
        self.result = result
        first = result.errors[0] if result.errors else "invalid input"
        super().__init__(f"{result.error_count} error(s); first: {first}")


# --- sniffing ----------------------------------------------------------------------------------


@dataclass
class Sniffed:
    encoding: str  # Postgres name: UTF8, WIN1252, LATIN1
    python_encoding: str
    delimiter: str
    headers: list[str]
    preview: list[list[str]]


def _fail(kind: str, reason: str, row: int | None = None, column: str | None = None, value=None):
    return ImportFailed(
        ImportResult(kind=kind, error_count=1, errors=[RowError(row, column, value, reason)])
    )


def sniff(path: str | Path, kind: str = "", preview_rows: int = 10) -> Sniffed:
    """Encoding, delimiter, header and a preview, from the first 64 KB of the file."""
    with open(path, "rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if not sample.strip():
        raise _fail(kind, "the file is empty")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _fail(kind, "UTF-16 files are not supported: save the file as UTF-8 CSV")
    if sample.startswith(codecs.BOM_UTF8):
        encoding, python_encoding = "UTF8", "utf-8-sig"
    else:
        cut = sample if len(sample) < SAMPLE_BYTES else sample[: sample.rfind(b"\n") + 1] or sample
        try:
            cut.decode("utf-8")
            encoding, python_encoding = "UTF8", "utf-8"
        except UnicodeDecodeError:
            # Excel's "CSV" in western locales is Windows-1252, a superset of Latin-1's letters;
            # bytes that 1252 leaves undefined mean plain Latin-1.
            undefined = any(b in sample for b in (0x81, 0x8D, 0x8F, 0x90, 0x9D))
            encoding, python_encoding = (
                ("LATIN1", "latin-1") if undefined else ("WIN1252", "cp1252")
            )
    text = sample.decode(python_encoding, errors="replace")
    lines = text.splitlines()
    header_line = lines[0] if lines else ""
    delimiter = max(DELIMITERS, key=lambda d: len(next(csv.reader([header_line], delimiter=d))))
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    headers = next(reader, [])
    preview = []
    for row in reader:
        if len(preview) >= preview_rows:
            break
        preview.append(row)
    return Sniffed(encoding, python_encoding, delimiter, headers, preview)


# --- header mapping ----------------------------------------------------------------------------


@dataclass
class Mapping:
    """What each file column becomes: a canonical column, a product attribute, or nothing."""

    targets: list[tuple[str, str]]  # (role, name): role is "column", "attribute" or "ignore"
    present: list[str]  # canonical columns present


def map_headers(fmt: Format, headers: list[str], column_map: dict[str, str]) -> Mapping:
    errors: list[RowError] = []
    targets: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    unknown: list[str] = []
    for raw in headers:
        original = raw.strip().lstrip("\ufeff").strip()
        if raw in column_map or original in column_map:
            wanted = column_map.get(raw, column_map.get(original, ""))
            canonical = normalise_header(wanted) if wanted and wanted != IGNORE else IGNORE
        else:
            canonical = normalise_header(raw)
        if canonical == IGNORE:
            targets.append(("ignore", original))
        elif canonical in fmt.names:
            if canonical in seen:
                errors.append(RowError(1, original, None, f"column {canonical!r} appears twice"))
            seen[canonical] = original
            targets.append(("column", canonical))
        elif not original:
            errors.append(RowError(1, None, None, "a column has an empty header"))
            targets.append(("ignore", original))
        elif fmt.extra_to_attributes:
            targets.append(("attribute", original))
        else:
            unknown.append(original)
            errors.append(
                RowError(1, original, None, f"unknown column{suggest(canonical, fmt.names)}; "
                         f"expected {', '.join(fmt.names)}")
            )  # fmt: skip
            targets.append(("ignore", original))
    for column in fmt.columns:
        if column.required and column.name not in seen:
            pool = unknown or [t[1] for t in targets if t[0] == "attribute"]
            hint = suggest(column.name, [normalise_header(u) for u in pool])
            errors.append(RowError(1, column.name, None, f"missing required column{hint}"))
    if errors:
        raise ImportFailed(ImportResult(kind=fmt.kind, error_count=len(errors), errors=errors))
    return Mapping(targets=targets, present=list(seen))


# --- SQL fragments: parse a text cell `r` into a typed value ------------------------------------

_NUM = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"
_NUM_DC = r"^\s*-?[0-9]+(,[0-9]+)?\s*$"
_INT = r"^\s*-?[0-9]{1,9}(\.0+)?\s*$"
_DATE = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*$"
_TS = (
    r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?"
    r"\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?)?\s*$"
)
_TRUE = "('true','t','1','yes','y')"
_FALSE = "('false','f','0','no','n')"


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty(r: str) -> str:
    return f"({r} IS NULL OR btrim({r}) = '')"


def _valid_date(s: str) -> str:
    """SQL: `s` (text 'YYYY-MM-DD...') names a real calendar day. Evaluated only after a regex."""
    y, m, d = f"substr({s},1,4)::int", f"substr({s},6,2)::int", f"substr({s},9,2)::int"
    last = f"extract(day from make_date({y}, {m}, 1) + interval '1 month' - interval '1 day')"
    return (
        f"CASE WHEN {y} >= 1 AND {m} BETWEEN 1 AND 12 THEN {d} BETWEEN 1 AND {last} ELSE false END"
    )


def parse_sql(col: Column, r: str, *, decimal_comma: bool, tz: str) -> str:
    """A SQL expression turning raw text `r` into the column's type; NaN/NULL when invalid."""
    if col.type in ("text", "url"):
        return f"NULLIF(btrim({r}), '')"
    if col.type == "currency":
        return f"NULLIF(upper(btrim({r})), '')"
    if col.type == "money":
        fast = _NUM_DC if decimal_comma else _NUM
        cast = (
            f"replace(btrim({r}), ',', '.')::numeric" if decimal_comma else f"btrim({r})::numeric"
        )
        return (
            f"CASE WHEN {_empty(r)} THEN NULL WHEN {r} ~ {_q(fast)} THEN {cast} "
            f"ELSE catalog_parse_money({r}, {'true' if decimal_comma else 'false'}) END"
        )
    if col.type == "int":
        return f"CASE WHEN {r} ~ {_q(_INT)} THEN btrim({r})::numeric::int END"
    if col.type == "bool":
        return (
            f"CASE WHEN lower(btrim({r})) IN {_TRUE} THEN true "
            f"WHEN lower(btrim({r})) IN {_FALSE} THEN false END"
        )
    if col.type == "date":
        s = f"btrim({r})"
        return f"CASE WHEN {r} ~ {_q(_DATE)} THEN CASE WHEN {_valid_date(s)} THEN {s}::date END END"
    if col.type == "timestamp":
        s = f"btrim({r})"
        seconds = f"substr({s},18,2)"
        clock = (
            f"(length({s}) < 16 OR (substr({s},12,2)::int < 24 AND substr({s},15,2)::int < 60"
            f" AND ({seconds} !~ '^[0-9]{{2}}$' OR {seconds}::int < 60)))"
        )
        with_zone = f"{s} ~ '(Z|[+-][0-9]{{2}}(:?[0-9]{{2}})?)$'"
        return (
            f"CASE WHEN {r} ~ {_q(_TS)} THEN CASE WHEN {_valid_date(s)} AND {clock} THEN "
            f"CASE WHEN {with_zone} THEN {s}::timestamptz "
            f"ELSE ({s}::timestamp AT TIME ZONE {_q(tz)}) END END END"
        )
    raise ValueError(col.type)


def _fast_date(r: str) -> str:
    s = f"btrim({r})"
    # No regex: an ISO-shaped cell is cast directly; one with letters raises, which sends the
    # whole file to the text path (where it is reported).
    return (
        f"CASE WHEN length({s}) = 10 AND substr({s},5,1) = '-' AND substr({s},8,1) = '-' "
        f"THEN {s}::date END"
    )


def checks_for(col: Column, r: str, v: str, *, native: bool = False) -> list[tuple[str, str]]:
    """(SQL condition that is true when the cell is invalid, reason) for one column.

    `native`: the staging column already has the column's type (the fast path), so the only
    possible problems are emptiness and the value's range.
    """
    out: list[tuple[str, str]] = []
    if native:
        if col.required:
            out.append((f"{r} IS NULL", "is required"))
        if col.type == "money":
            out.append((f"{v} = 'NaN'", "not a number (e.g. 1299.00, $1,299.00 or ₹32,999)"))
            out.append((f"{v} <> 'NaN' AND abs({v}) >= 1e10", "is too large"))
        if col.minimum:
            guard = f"{v} <> 'NaN' AND " if col.type == "money" else ""
            out.append((f"{guard}NOT ({col.minimum.replace('v', v)})", col.minimum_reason))
        return out
    if col.required:
        out.append((_empty(r), "is required"))
    if col.type == "money":
        out.append((f"{v} = 'NaN'", "not a number (e.g. 1299.00, $1,299.00 or ₹32,999)"))
        out.append((f"{v} <> 'NaN' AND abs({v}) >= 1e10", "is too large"))
    elif col.type == "int":
        out.append((f"NOT {_empty(r)} AND {v} IS NULL", "not a whole number"))
    elif col.type == "date":
        out.append((f"NOT {_empty(r)} AND {v} IS NULL", "not a valid date (use YYYY-MM-DD)"))
    elif col.type == "timestamp":
        out.append(
            (
                f"NOT {_empty(r)} AND {v} IS NULL",
                "not a valid date-time (use ISO 8601, e.g. 2024-05-01T10:00:00Z)",
            )
        )
    elif col.type == "bool":
        out.append((f"NOT {_empty(r)} AND {v} IS NULL", "not true/false (also yes/no, 1/0)"))
    elif col.type == "currency":
        out.append((f"{v} !~ '^[A-Z]{{3}}$'", "not an ISO 4217 currency code such as EUR"))
    elif col.type == "url":
        out.append((f"{v} !~* '^https?://'", "not an http(s) URL"))
    if col.max_length:
        out.append((f"length({v}) > {col.max_length}", f"longer than {col.max_length} characters"))
    if col.minimum:
        cond = col.minimum.replace("v", v)
        guard = f"{v} <> 'NaN' AND " if col.type == "money" else ""
        out.append((f"{guard}NOT ({cond})", col.minimum_reason))
    return out


# --- the pipeline ------------------------------------------------------------------------------


class _ProgressReader(io.RawIOBase):
    """A binary reader that reports the share of bytes read, about every 4 MB."""

    def __init__(self, handle, total: int, callback: Callable[[float], None] | None):
        self.handle, self.total, self.callback = handle, max(total, 1), callback
        self.done = self.next_report = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.done = self.next_report = 0
        return self.handle.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size if size and size > 0 else 1 << 16)
        self.done += len(chunk)
        if self.callback and self.done >= self.next_report:
            self.next_report = self.done + (4 << 20)
            self.callback(min(self.done / self.total, 1.0))
        return chunk

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


_COPY_LINE = re.compile(r"line (\d+)")
_COPY_COLUMN = re.compile(r'column "?(c\d+)"?')


def import_file(
    *,
    kind: str,
    path: str | Path,
    options: ImportOptions | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> ImportResult:
    """Import a CSV (any common encoding and delimiter) or XLSX file for the current tenant.

    Raises ImportFailed, with nothing written, when the input is invalid.
    """
    options = options or ImportOptions()
    fmt = get_format(kind)
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        with tempfile.TemporaryDirectory() as folder:
            csv_path = Path(folder) / "sheet.csv"
            xlsx_to_csv(path, csv_path, kind)
            return import_file(kind=kind, path=csv_path, options=options, progress=progress)
    sniffed = sniff(path, kind)
    mapping = map_headers(fmt, sniffed.headers, options.column_map)
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        reader = _ProgressReader(
            handle, size, (lambda share: progress("reading", share)) if progress else None
        )
        result = _run(fmt, mapping, reader, sniffed.encoding, sniffed.delimiter, options, progress)
    result.encoding, result.delimiter, result.headers = (
        sniffed.encoding,
        sniffed.delimiter,
        sniffed.headers,
    )
    return result


def import_rows(
    *, kind: str, rows: list[dict], options: ImportOptions | None = None
) -> ImportResult:
    """Import JSON objects (the API's bulk upsert). Errors name the array index as `row`."""
    options = options or ImportOptions()
    fmt = get_format(kind)
    if not rows:
        raise _fail(kind, "no rows given")
    headers: list[str] = []
    for row in rows:
        if not isinstance(row, dict):
            raise _fail(kind, "each row must be a JSON object")
        for key in row:
            if key not in headers:
                headers.append(key)
    mapping = map_headers(fmt, headers, options.column_map)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    for row in rows:
        writer.writerow(["" if row.get(h) is None else _cell(row.get(h)) for h in headers])
    data = io.BytesIO(buffer.getvalue().encode("utf-8"))
    try:
        result = _run(fmt, mapping, data, "UTF8", ",", options, None)
    except ImportFailed as exc:
        _rows_to_indexes(exc.result)
        raise
    _rows_to_indexes(result)
    return result


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rows_to_indexes(result: ImportResult) -> None:
    result.errors = [
        RowError(e.row - 2 if e.row and e.row > 1 else None, e.column, e.value, e.reason)
        for e in result.errors
    ]


def _run(fmt, mapping, reader, encoding, delimiter, options, progress) -> ImportResult:
    tenant = require_current_tenant()
    result = ImportResult(kind=fmt.kind)
    try:
        with transaction.atomic():
            _pipeline(fmt, mapping, reader, encoding, delimiter, options, progress, tenant, result)
    except _Invalid:
        raise ImportFailed(result) from None
    return result


class _Invalid(Exception):
    """Internal: roll the transaction back; the errors are in the result."""


# Fast path: columns that Postgres can type while copying. A file whose every cell fits (most
# files) is parsed by COPY itself; any cell that does not ("$1,299", "three", an impossible date)
# makes the fast path fail, and the file is read again through the text path that reports it.
TYPED = {"money": "numeric", "int": "integer", "bool": "boolean"}


def _stage_type(mapping: Mapping, fmt: Format, index: int, typed: bool) -> str:
    role, name = mapping.targets[index]
    if typed and role == "column":
        return TYPED.get(fmt.column(name).type, "text")
    return "text"


def _pipeline(fmt, mapping, reader, encoding, delimiter, options, progress, tenant, result):
    suffix = secrets.token_hex(4)
    stage, clean = f"import_stage_{suffix}", f"import_clean_{suffix}"
    with connection.cursor() as cur:
        checks = None
        if not options.decimal_comma:
            try:
                with transaction.atomic():
                    checks = _stage_and_clean(
                        fmt, mapping, reader, encoding, delimiter, options, progress, tenant,
                        result, cur, stage, clean, typed=True,
                    )  # fmt: skip
            except (psycopg2.DataError, DataError, psycopg2.errors.BadCopyFileFormat):
                reader.seek(0)
                checks = None
        if checks is None:
            checks = _stage_and_clean(
                fmt, mapping, reader, encoding, delimiter, options, progress, tenant, result,
                cur, stage, clean, typed=False,
            )  # fmt: skip
        _collect_errors(cur, clean, stage, checks, mapping, result)
        if result.error_count and not options.skip_invalid:
            raise _Invalid
        result.skipped = _count_invalid(cur, clean) if result.error_count else 0
        if options.create_missing_products and fmt.kind != "products":
            _create_stub_products(cur, clean, tenant)
        if progress:
            progress("writing", 0.0)
        try:
            with transaction.atomic():
                created, updated = _upsert(fmt, mapping, clean, tenant, cur)
        except (IntegrityError, ProgrammingError) as exc:
            # Two rows of the file with one key: ON CONFLICT refuses to touch a row twice
            # (cardinality violation), a plain INSERT hits the unique index.
            cause = exc.__cause__
            duplicate = (psycopg2.errors.CardinalityViolation, psycopg2.errors.UniqueViolation)
            if not isinstance(cause, duplicate):
                raise
            _duplicate_errors(fmt, cur, clean, stage, mapping, result)
            raise _Invalid from exc
        result.created, result.updated = created, updated
        result.unchanged = result.rows - result.skipped - created - updated
        cur.execute(f"DROP TABLE IF EXISTS {clean}, {stage}")


def _stage_and_clean(
    fmt,
    mapping,
    reader,
    encoding,
    delimiter,
    options,
    progress,
    tenant,
    result,
    cur,
    stage,
    clean,
    *,
    typed: bool,
) -> list[tuple[str, str]]:
    """COPY the file into a staging table and parse it into the clean table; the checks."""
    cols = [f"c{i}" for i in range(len(mapping.targets))]
    types = [_stage_type(mapping, fmt, i, typed) for i in range(len(cols))]
    cur.execute(
        f"CREATE TEMP TABLE {stage} (line bigint GENERATED ALWAYS AS IDENTITY (START 2), "
        + ", ".join(f"{c} {t}" for c, t in zip(cols, types, strict=True))
        + ") ON COMMIT DROP"
    )
    copy = (
        f"COPY {stage} ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv, HEADER true, "
        f"DELIMITER {_q(delimiter)}, ENCODING {_q(encoding)})"
    )
    if typed:
        cur.cursor.copy_expert(copy, reader, size=1 << 16)  # a failure sends us to the text path
    else:
        try:
            with transaction.atomic():
                cur.cursor.copy_expert(copy, reader, size=1 << 16)
        except psycopg2.Error as exc:
            result.error_count = 1
            result.errors = [_copy_error(exc, mapping)]
            raise _Invalid from exc
    cur.execute(f"SELECT count(*) FROM {stage}")
    result.rows = cur.fetchone()[0]
    if result.rows == 0:
        result.error_count = 1
        result.errors = [RowError(None, None, None, "the file has a header but no data rows")]
        raise _Invalid
    if progress:
        progress("validating", 0.0)
    return _build_clean(fmt, mapping, stage, clean, options, tenant, cur, typed=typed)


def _copy_error(exc: psycopg2.Error, mapping: Mapping) -> RowError:
    diag = exc.diag
    primary = (diag.message_primary or str(exc)).strip()
    context = diag.context or ""
    line = _COPY_LINE.search(context)
    column = _COPY_COLUMN.search(primary) or _COPY_COLUMN.search(context)
    name = None
    if column:
        index = int(column.group(1)[1:])
        name = mapping.targets[index][1] if index < len(mapping.targets) else None
        primary = primary.replace(f'"{column.group(1)}"', repr(name))
    if "invalid byte sequence" in primary:
        primary += " (the file mixes encodings: save it as UTF-8)"
    if "extra data after last expected column" in primary:
        primary = "more cells than the header has columns (check quoting and the delimiter)"
    return RowError(int(line.group(1)) if line else None, name, None, primary)


def _build_clean(fmt, mapping, stage, clean, options, tenant, cur, *, typed=False):
    raw = {name: f"s.c{i}" for i, (role, name) in enumerate(mapping.targets) if role == "column"}
    inner, outer, checks = [], ["p.line"], []
    for col in fmt.columns:
        if col.name not in raw:
            continue
        r = raw[col.name]
        native = typed and col.type in TYPED  # COPY already parsed it
        if native:
            expr = r
        elif typed and col.type == "date":
            expr = _fast_date(r)  # ISO-shaped text cast directly; an impossible day raises
        else:
            expr = parse_sql(col, r, decimal_comma=options.decimal_comma, tz=tenant.timezone)
        inner += [f"{r} AS r_{col.name}", f"{expr} AS v_{col.name}"]
        outer.append(f"p.v_{col.name}")
        for cond, reason in checks_for(col, f"p.r_{col.name}", f"p.v_{col.name}", native=native):
            checks.append((col.name, cond, reason))
    joins = ""
    if fmt.kind == "products":
        attributes = [
            f"{_q(name)}, NULLIF(btrim(s.c{i}), '')"
            for i, (role, name) in enumerate(mapping.targets)
            if role == "attribute"
        ]
        chunks = [attributes[i : i + 40] for i in range(0, len(attributes), 40)]
        attrs = " || ".join(
            f"jsonb_strip_nulls(jsonb_build_object({', '.join(c)}))" for c in chunks
        )
        inner.append(f"{attrs or EMPTY_JSON} AS v_attributes")
        outer.append("p.v_attributes")
        if "min_price" in raw and "max_price" in raw:
            checks.append(
                ("min_price", "p.v_min_price > p.v_max_price", "min_price is above max_price")
            )
    else:
        inner.append("pr.id AS product_id")
        outer.append("p.product_id")
        joins = (
            f" LEFT JOIN catalog_product pr ON pr.tenant_id = {int(tenant.pk)} "
            f"AND pr.sku = NULLIF(btrim({raw['sku']}), '')"
        )
        if not options.create_missing_products:
            checks.append(
                ("sku", f"p.product_id IS NULL AND NOT {_empty('p.v_sku')}",
                 "unknown SKU: import it in the products file first, or allow stub products")
            )  # fmt: skip
    errs = ", ".join(f"CASE WHEN {cond} THEN {i} END" for i, (_, cond, _) in enumerate(checks))
    errs_sql = f"array_remove(ARRAY[{errs}]::int[], NULL)" if checks else "'{}'::int[]"
    # OFFSET 0 keeps the inner query a subquery, so each cell is parsed once, not per reference.
    cur.execute(
        f"CREATE TEMP TABLE {clean} ON COMMIT DROP AS "
        f"SELECT {', '.join(outer)}, {errs_sql} AS errs FROM ("
        f"SELECT s.line, {', '.join(inner)} FROM {stage} s{joins} OFFSET 0) p"
    )
    return [(column, reason) for column, _, reason in checks]


def _collect_errors(cur, clean, stage, checks, mapping, result) -> None:
    cur.execute(f"SELECT coalesce(sum(cardinality(errs)), 0) FROM {clean} WHERE errs <> '{{}}'")
    result.error_count = int(cur.fetchone()[0])
    if not result.error_count:
        return
    index = {name: i for i, (role, name) in enumerate(mapping.targets) if role == "column"}
    cur.execute(
        f"SELECT c.line, c.errs, to_jsonb(s) FROM {clean} c JOIN {stage} s ON s.line = c.line "
        f"WHERE c.errs <> '{{}}' ORDER BY c.line LIMIT {MAX_REPORTED_ERRORS}"
    )
    errors: list[RowError] = []
    for line, codes, raw in cur.fetchall():
        raw = json.loads(raw, parse_float=str, parse_int=str) if isinstance(raw, str) else raw
        for code in codes:
            column, reason = checks[code]
            value = raw.get(f"c{index[column]}") if column in index else None
            if value is not None and not isinstance(value, str):
                value = json.dumps(value)  # a typed cell of the fast path (true/false)
            errors.append(RowError(line, column, value, reason))
    result.errors = errors[:MAX_REPORTED_ERRORS]


def _count_invalid(cur, clean) -> int:
    cur.execute(f"SELECT count(*) FROM {clean} WHERE errs <> '{{}}'")
    return cur.fetchone()[0]


def _create_stub_products(cur, clean, tenant) -> None:
    """Products for SKUs that sales or offers name but the catalog lacks, marked as stubs."""
    cur.execute(
        f"""
        INSERT INTO catalog_product AS t (tenant_id, sku, title, description, category, brand,
            attributes, price, currency, active, created_at, updated_at)
        SELECT DISTINCT ON (v_sku) {int(tenant.pk)}, v_sku, v_sku, '', '', '',
            '{{"stub": true}}'::jsonb, v_price, {_q(tenant.default_currency)}, true, now(), now()
        FROM {clean} WHERE product_id IS NULL AND errs = '{{}}'
        ORDER BY v_sku, line DESC
        ON CONFLICT (tenant_id, sku) DO NOTHING
        """
    )
    cur.execute(
        f"UPDATE {clean} c SET product_id = p.id FROM catalog_product p "
        f"WHERE c.product_id IS NULL AND p.tenant_id = {int(tenant.pk)} AND p.sku = c.v_sku"
    )


def _upsert(fmt, mapping, clean, tenant, cur) -> tuple[int, int]:
    t = int(tenant.pk)
    present = set(mapping.present)
    if fmt.kind == "products":
        # The value for a new row: the cell when the column is present, else the default.
        fallback = {
            "description": "''",
            "category": "''",
            "brand": "''",
            "currency": _q(tenant.default_currency),
            "active": "true",
        }
        insert_cols = [c.name for c in fmt.columns]
        select = [
            (f"coalesce(v_{c}, {fallback[c]})" if c in fallback else f"v_{c}")
            if c in present
            else fallback.get(c, "NULL")
            for c in insert_cols
        ]
        updatable = [c for c in insert_cols if c in present and c != "sku"]
        sets = [f"{c} = EXCLUDED.{c}" for c in updatable] + [
            "attributes = t.attributes || EXCLUDED.attributes",
            "updated_at = now()",
        ]
        old = [f"t.{c}" for c in updatable] + ["t.attributes"]
        new = [f"EXCLUDED.{c}" for c in updatable] + ["t.attributes || EXCLUDED.attributes"]
        sql = f"""
            INSERT INTO catalog_product AS t (tenant_id, {", ".join(insert_cols)}, attributes,
                created_at, updated_at)
            SELECT {t}, {", ".join(select)}, v_attributes, now(), now()
            FROM {clean} WHERE errs = '{{}}'
            ON CONFLICT (tenant_id, sku) DO UPDATE SET {", ".join(sets)}
            WHERE ({", ".join(old)}) IS DISTINCT FROM ({", ".join(new)})
            RETURNING (xmax = 0) AS inserted
        """
    elif fmt.kind == "sales":
        fresh = _no_sales_overlap(cur, clean, t)
        revenue = (
            "coalesce(v_revenue, v_units * v_price)"
            if "revenue" in present
            else "v_units * v_price"
        )
        promo = "coalesce(v_promo, false)" if "promo" in present else "false"
        channel = "coalesce(v_channel, '')" if "channel" in present else "''"
        sql = f"""
            INSERT INTO catalog_salesrecord AS t (tenant_id, product_id, date, channel, units,
                price, revenue, promo)
            SELECT {t}, product_id, v_date, {channel}, v_units, v_price, {revenue}, {promo}
            FROM {clean} WHERE errs = '{{}}'
            ORDER BY product_id, v_date
        """
        if fresh:  # nothing to update: a plain INSERT is about twice as fast as ON CONFLICT
            cur.execute(sql)
            return cur.rowcount, 0
        sql += """
            ON CONFLICT (tenant_id, product_id, date, channel) DO UPDATE SET
                units = EXCLUDED.units, price = EXCLUDED.price, revenue = EXCLUDED.revenue,
                promo = EXCLUDED.promo
            WHERE (t.units, t.price, t.revenue, t.promo)
                IS DISTINCT FROM (EXCLUDED.units, EXCLUDED.price, EXCLUDED.revenue, EXCLUDED.promo)
            RETURNING (xmax = 0) AS inserted
        """
    else:
        in_stock = "coalesce(v_in_stock, true)" if "in_stock" in present else "true"
        url = "coalesce(v_url, '')" if "url" in present else "''"
        sql = f"""
            INSERT INTO catalog_competitoroffer AS t (tenant_id, product_id, competitor, price,
                observed_at, in_stock, url)
            SELECT {t}, product_id, v_competitor, v_price, v_observed_at, {in_stock}, {url}
            FROM {clean} WHERE errs = '{{}}'
            ON CONFLICT (tenant_id, product_id, competitor, observed_at) DO UPDATE SET
                price = EXCLUDED.price, in_stock = EXCLUDED.in_stock, url = EXCLUDED.url
            WHERE (t.price, t.in_stock, t.url)
                IS DISTINCT FROM (EXCLUDED.price, EXCLUDED.in_stock, EXCLUDED.url)
            RETURNING (xmax = 0) AS inserted
        """
    cur.execute(
        f"WITH ins AS ({sql}) SELECT count(*) FILTER (WHERE inserted), "
        f"count(*) FILTER (WHERE NOT inserted) FROM ins"
    )
    created, updated = cur.fetchone()
    return int(created), int(updated)


def _no_sales_overlap(cur, clean, tenant_id: int) -> bool:
    """True when the tenant has no sales at all in the file's date range (a first import)."""
    cur.execute(
        f"SELECT NOT EXISTS (SELECT 1 FROM catalog_salesrecord WHERE tenant_id = {tenant_id} "
        f"AND date BETWEEN (SELECT min(v_date) FROM {clean}) AND (SELECT max(v_date) FROM {clean}))"
    )
    return bool(cur.fetchone()[0])


def _duplicate_errors(fmt, cur, clean, stage, mapping, result) -> None:
    key = [
        "v_sku" if k == "sku" else f"v_{k}" for k in fmt.key if k == "sku" or k in mapping.present
    ]
    if fmt.kind != "products":
        key = ["product_id" if k == "v_sku" else k for k in key]
    cols = ", ".join(key)
    cur.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {clean} WHERE errs = '{{}}' GROUP BY {cols} "
        f"HAVING count(*) > 1) d"
    )
    groups = cur.fetchone()[0]
    cur.execute(
        f"""
        SELECT lines FROM (
            SELECT array_agg(line ORDER BY line) AS lines FROM {clean} WHERE errs = '{{}}'
            GROUP BY {cols} HAVING count(*) > 1) d
        ORDER BY lines[1] LIMIT {MAX_REPORTED_ERRORS}
        """
    )
    label = " + ".join(k for k in fmt.key if k == "sku" or k in mapping.present)
    errors = []
    for (lines,) in cur.fetchall():
        for line in lines[1:]:
            errors.append(
                RowError(line, fmt.key[0], None, f"duplicate {label}: same as row {lines[0]}")
            )
    result.error_count = max(len(errors), groups)
    result.errors = errors[:MAX_REPORTED_ERRORS]


# --- XLSX --------------------------------------------------------------------------------------


def xlsx_to_csv(source: Path, target: Path, kind: str = "", max_rows: int | None = None) -> None:
    """Stream the first worksheet into a UTF-8 CSV (openpyxl read-only mode, row by row);
    `max_rows` stops after that many non-empty rows (the header and a preview).

    The CSV appears at `target` only when complete (written beside it, then renamed), so a
    crash or a workbook that breaks half-way never leaves a partial file to be imported later;
    a workbook that cannot be read raises ImportFailed with the reason."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException ...
        raise _fail(kind, f"not a readable .xlsx workbook ({exc.__class__.__name__})") from exc
    # A file of its own beside the target (two conversions of one upload, e.g. a redelivered
    # task, never write into each other), renamed into place when complete.
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    partial = Path(name)
    written = seen = 0  # rows written; rows of the sheet read, empty ones included
    try:
        if not workbook.worksheets:
            raise _fail(kind, "the workbook has no worksheet")
        with open(handle, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            rows = workbook.worksheets[0].iter_rows(values_only=True)
            while max_rows is None or written < max_rows:
                try:
                    row = next(rows, None)
                except Exception as exc:  # a damaged sheet: bad XML, a truncated zip member
                    raise _fail(
                        kind,
                        f"the workbook's first sheet could not be read past row {seen} "
                        f"({exc.__class__.__name__}: {exc})"[:300],
                        row=seen + 1,
                    ) from exc
                if row is None:
                    break
                seen += 1
                if all(v is None for v in row):
                    continue
                writer.writerow(["" if v is None else _xlsx_cell(v) for v in row])
                written += 1
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
        workbook.close()


def _xlsx_cell(value) -> str:
    import datetime as dt

    if isinstance(value, dt.datetime):
        return value.isoformat() if value.time() != dt.time(0) else value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
