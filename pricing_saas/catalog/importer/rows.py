"""Reading and checking the rows of one run: the file is COPYed into a staging table of one
column per file column (numbered rows), then parsed in one SQL pass into a clean table of
typed values plus, per row, the codes of the checks it fails; the report names each failure's
row, column, value and reason."""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg2
from django.db import transaction

from ..formats import PRODUCTS
from .headers import Mapping
from .parse import TYPED, checks_for, empty, fast_date, parse_sql, q
from .results import MAX_REPORTED_ERRORS, Invalid, RowError
from .sniff import NUL_BYTE

if TYPE_CHECKING:
    from .run import ImportRun

EMPTY_JSON = "'{}'::jsonb"
ATTRIBUTES_PER_CALL = 40  # jsonb_build_object takes at most 100 arguments

_COPY_LINE = re.compile(r"line (\d+)")
_COPY_COLUMN = re.compile(r'column "?(c\d+)"?')


class ProgressReader(io.RawIOBase):
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


class NonDecimalNumbers(Exception):
    """A cell of the file may be a number the typed COPY would read but the importer refuses."""


_NUMBER, _EDGE, _OTHER = 0, 1, 2  # what a byte can be in a number cell: part, edge, neither


@functools.cache
def _byte_classes():
    """Per byte value: its kind in a cell, and whether it is a digit (numpy lookup arrays;
    numpy is imported only once a file holds an underscore between digits)."""
    import numpy as np

    kind = np.full(256, _OTHER, np.uint8)
    kind[list(b"0123456789_.eE+- ")] = _NUMBER
    kind[list(b',;\t|"\r\n')] = _EDGE
    digit = np.zeros(256, bool)
    digit[list(b"0123456789")] = True
    return kind, digit


class NonDecimalGuard(io.RawIOBase):
    """Reads `source` through and notes whether a cell starts like a hexadecimal, octal or
    binary number (`0x10`, `0o17`, `0b11`).

    Postgres 16 reads those as numbers (`0x10` is 16), so on the typed fast path a price of
    "0x10" was stored as 16; the text path refuses them with the cell's row and reason. A file
    with such a cell goes to the text path (a text cell that merely starts so, a SKU "0B12",
    costs only speed). Each chunk is searched with `in` first (memchr for the letter: about
    0.1-0.2 s per million rows, against 5.5 s for the import); only a hit is looked at.

    Digit separators (`1_000`, also read by Postgres 16 and Python's float()) send the file
    to the text path too, which reports such a cell as a row error naming its column. A chunk
    without an underscore between digits costs a memchr and, at most, one regular-expression
    search; one with such an underscore is classified byte by byte with numpy (each cell: only
    number characters or not), so a SKU `AB_12` or a title `Pack 1_000` keeps the fast path.
    Measured on a shared 2-core machine: 0.03 s per million rows without underscores, 1.8 s
    with one in every SKU (`SKU_12_3`)."""

    _PREFIX = re.compile(rb"0[xXoObB]")
    _LETTERS = (b"x", b"X", b"o", b"O", b"b", b"B")
    _BLANK_OR_SIGN = frozenset(b" \t+-")
    _CELL_START = frozenset(b',;\t|"\r\n')
    _TAIL = 64  # bytes of the previous chunk kept, for a cell cut by a chunk boundary
    _DIGIT_SEPARATOR = re.compile(rb"[0-9]_[0-9]")

    def __init__(self, source):
        self.source, self.found, self.tail = source, False, b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        if chunk and not self.found:
            # The tail is context: its candidates were looked at with the previous chunk, but
            # for one cut by the boundary (its first byte is the tail's last).
            window, start = self.tail + chunk, max(len(self.tail) - 1, 0)
            self.found = self._hexadecimal(window, start) or self._separated(window)
            self.tail = window[-self._TAIL :]
        elif not chunk and self.tail and not self.found:  # the end: a last cell, no line end
            self.found = self._separated(self.tail + b"\n")
            self.tail = b""
        return chunk

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _starts_cell(self, window: bytes, at: int) -> bool:
        """Only blanks and a sign lie between `at` and the start of its cell (or the window's,
        which counts as one: the safe side)."""
        at -= 1
        while at >= 0 and window[at] in self._BLANK_OR_SIGN:
            at -= 1
        return at < 0 or window[at] in self._CELL_START

    def _separated(self, window: bytes) -> bool:
        """A whole cell of the window (between delimiters, quotes or line ends) is a number
        with an underscore between two digits. A cell cut by the window's start was looked at
        with the previous chunk, one cut by its end is looked at with the next."""
        if b"_" not in window or not self._DIGIT_SEPARATOR.search(window):
            return False
        import numpy as np

        kinds, digits = _byte_classes()
        data = np.frombuffer(window, np.uint8)
        inner = np.flatnonzero(data[1:-1] == ord("_")) + 1
        digit = digits[data]
        inner = inner[digit[inner - 1] & digit[inner + 1]]
        kind = kinds[data]
        cell = np.cumsum(kind == _EDGE)  # each byte's cell number; an edge opens the next
        lettered = np.zeros(int(cell[-1]) + 1, bool)
        lettered[cell[kind == _OTHER]] = True
        cells = cell[inner]
        whole = cells < cell[-1]  # the last cell has no closing edge yet
        if self.tail:
            whole &= cells > 0  # the first began before the window
        return bool((whole & ~lettered[cells]).any())

    def _hexadecimal(self, window: bytes, start: int) -> bool:
        if not any(c in window and b"0" + c in window for c in self._LETTERS):
            return False
        matches = self._PREFIX.finditer(window, start)
        return any(self._starts_cell(window, m.start()) for m in matches)


def load(run: ImportRun, *, typed: bool) -> None:
    """COPY the file into the staging table and parse it into the clean table.

    `typed`: the staging table types money, whole-number and boolean columns, so that COPY
    parses them; a cell that does not fit raises a DataError, and a cell COPY would read too
    leniently (`0x10`) NonDecimalNumbers (the caller then reads the file again untyped).
    Untyped, a file COPY cannot read at all is reported (Invalid)."""
    cur, stage = run.cur, run.stage
    cols = [f"c{i}" for i in range(len(run.mapping.targets))]
    types = [_stage_type(run, i, typed) for i in range(len(cols))]
    cur.execute(
        f"CREATE TEMP TABLE {stage} (line bigint GENERATED ALWAYS AS IDENTITY (START 2), "
        + ", ".join(f"{c} {t}" for c, t in zip(cols, types, strict=True))
        + ") ON COMMIT DROP"
    )
    copy = (
        f"COPY {stage} ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv, HEADER true, "
        f"DELIMITER {q(run.delimiter)}, ENCODING {q(run.encoding)})"
    )
    if typed:
        guard = NonDecimalGuard(run.source)
        cur.cursor.copy_expert(copy, guard, size=1 << 16)  # a failure: the text path
        if guard.found:
            raise NonDecimalNumbers
    else:
        try:
            with transaction.atomic():
                cur.cursor.copy_expert(copy, run.source, size=1 << 16)
        except psycopg2.Error as exc:
            run.result.error_count = 1
            run.result.errors = [_copy_error(exc, run.mapping)]
            raise Invalid from exc
    cur.execute(f"SELECT count(*) FROM {stage}")
    run.result.rows = cur.fetchone()[0]
    if run.result.rows == 0:
        run.result.error_count = 1
        run.result.errors = [RowError(None, None, None, "the file has a header but no data rows")]
        raise Invalid
    run.report("validating", 0.0)
    build_clean(run, typed=typed)


def _stage_type(run: ImportRun, index: int, typed: bool) -> str:
    role, name = run.mapping.targets[index]
    if typed and role == "column":
        return TYPED.get(run.fmt.column(name).type, "text")
    return "text"


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
    if "invalid byte sequence" in primary and "0x00" in primary:
        primary = NUL_BYTE
    elif "invalid byte sequence" in primary:
        primary += " (the file mixes encodings: save it as UTF-8)"
    if "extra data after last expected column" in primary:
        primary = "more cells than the header has columns (check quoting and the delimiter)"
    return RowError(int(line.group(1)) if line else None, name, None, primary)


def build_clean(run: ImportRun, *, typed: bool = False) -> None:
    """The clean table: per row its line, each present column's parsed value `v_<column>`
    (the product's id for a format whose rows name one; `v_attributes` for extra columns) and
    `errs`, the indexes into `run.checks` of the checks it fails."""
    fmt, options, tenant = run.fmt, run.options, run.tenant
    raw = {name: f"s.c{i}" for name, i in run.mapping.columns().items()}
    inner, outer, checks = [], ["p.line"], []
    for col in fmt.columns:
        if col.name not in raw:
            continue
        r = raw[col.name]
        native = typed and col.type in TYPED  # COPY already parsed it
        if native:
            expr = r
        elif typed and col.type == "date":
            expr = fast_date(r)  # ISO-shaped text cast directly; an impossible day raises
        else:
            expr = parse_sql(col, r, decimal_comma=options.decimal_comma, tz=tenant.timezone)
        inner += [f"{r} AS r_{col.name}", f"{expr} AS v_{col.name}"]
        outer.append(f"p.v_{col.name}")
        for cond, reason in checks_for(col, f"p.r_{col.name}", f"p.v_{col.name}", native=native):
            checks.append((col.name, cond, reason))
    if fmt.extra_to_attributes:
        attributes = [
            f"{q(name)}, NULLIF(btrim(s.c{i}), '')"
            for i, (role, name) in enumerate(run.mapping.targets)
            if role == "attribute"
        ]
        chunks = [
            attributes[i : i + ATTRIBUTES_PER_CALL]
            for i in range(0, len(attributes), ATTRIBUTES_PER_CALL)
        ]
        attrs = " || ".join(
            f"jsonb_strip_nulls(jsonb_build_object({', '.join(c)}))" for c in chunks
        )
        inner.append(f"{attrs or EMPTY_JSON} AS v_attributes")
        outer.append("p.v_attributes")
    for check in fmt.row_checks:
        if check.columns <= raw.keys():
            values = {name: f"p.v_{name}" for name in check.columns}
            checks.append((check.column, check.invalid_when.format(**values), check.reason))
    joins = ""
    if fmt.names_product:
        inner.append("pr.id AS product_id")
        outer.append("p.product_id")
        joins = (
            f" LEFT JOIN {PRODUCTS.table} pr ON pr.tenant_id = {int(tenant.pk)} "
            f"AND pr.sku = NULLIF(btrim({raw['sku']}), '')"
        )
        if not options.create_missing_products:
            checks.append(
                (
                    "sku",
                    f"p.product_id IS NULL AND NOT {empty('p.v_sku')}",
                    "unknown SKU: import it in the products file first, or allow stub products",
                )
            )
    errs = ", ".join(f"CASE WHEN {cond} THEN {i} END" for i, (_, cond, _) in enumerate(checks))
    errs_sql = f"array_remove(ARRAY[{errs}]::int[], NULL)" if checks else "'{}'::int[]"
    # OFFSET 0 keeps the inner query a subquery, so each cell is parsed once, not per reference.
    run.cur.execute(
        f"CREATE TEMP TABLE {run.clean} ON COMMIT DROP AS "
        f"SELECT {', '.join(outer)}, {errs_sql} AS errs FROM ("
        f"SELECT s.line, {', '.join(inner)} FROM {run.stage} s{joins} OFFSET 0) p"
    )
    run.checks = [(column, reason) for column, _, reason in checks]


def collect_errors(run: ImportRun) -> None:
    """Count the failed checks; report the first MAX_REPORTED_ERRORS with the cell's value."""
    cur, clean, result = run.cur, run.clean, run.result
    cur.execute(f"SELECT coalesce(sum(cardinality(errs)), 0) FROM {clean} WHERE errs <> '{{}}'")
    result.error_count = int(cur.fetchone()[0])
    if not result.error_count:
        return
    index = run.mapping.columns()
    cur.execute(
        f"SELECT c.line, c.errs, to_jsonb(s) FROM {clean} c JOIN {run.stage} s ON s.line = c.line "
        f"WHERE c.errs <> '{{}}' ORDER BY c.line LIMIT {MAX_REPORTED_ERRORS}"
    )
    errors: list[RowError] = []
    for line, codes, raw in cur.fetchall():
        raw = json.loads(raw, parse_float=str, parse_int=str) if isinstance(raw, str) else raw
        for code in codes:
            column, reason = run.checks[code]
            value = raw.get(f"c{index[column]}") if column in index else None
            if value is not None and not isinstance(value, str):
                value = json.dumps(value)  # a typed cell of the fast path (true/false)
            errors.append(RowError(line, column, value, reason))
    result.errors = errors[:MAX_REPORTED_ERRORS]


def count_invalid(run: ImportRun) -> int:
    """Rows with at least one failed check."""
    run.cur.execute(f"SELECT count(*) FROM {run.clean} WHERE errs <> '{{}}'")
    return run.cur.fetchone()[0]
