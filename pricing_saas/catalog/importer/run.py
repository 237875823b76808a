"""One import run, and the two ways to start one: a file (`import_file`) or JSON rows
(`import_rows`)."""

from __future__ import annotations

import csv
import io
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg2
from django.db import DataError, IntegrityError, ProgrammingError, connection, transaction

from tenants.context import require_current_tenant
from tenants.models import Tenant

from ..formats import Format, get_format
from .headers import Mapping, map_headers
from .planner import refresh_after_commit
from .results import ImportFailed, ImportResult, Invalid, RowError, failure
from .rows import NonDecimalNumbers, ProgressReader, collect_errors, count_invalid, load
from .sniff import sniff
from .upsert import create_stub_products, duplicate_errors, one_spelling, upsert
from .xlsx import xlsx_to_csv


@dataclass(frozen=True)
class ImportOptions:
    decimal_comma: bool = False  # "1.299,00 €": dot groups thousands, comma marks decimals
    create_missing_products: bool = False  # sales/offers for unknown SKUs create stub products
    skip_invalid: bool = False  # land the valid rows and report the others
    column_map: dict[str, str] = field(default_factory=dict)  # file header -> canonical or IGNORE


@dataclass(eq=False)
class ImportRun:
    """One import of CSV bytes into the current tenant's tables, and what it found.

    It holds what every step needs: the format, the mapping of the file's columns, the
    options, the source and how to read it, the tenant, the progress callback, the result
    being filled in, and, while it executes, the cursor, the names of its two temporary tables
    and the checks of the clean table. `execute()` runs it all in one transaction: on invalid
    input it raises ImportFailed and writes nothing.
    """

    fmt: Format
    mapping: Mapping
    options: ImportOptions
    source: IO[bytes]  # seekable: the typed fast path may fail and the file be read again
    encoding: str = "UTF8"  # Postgres's name
    delimiter: str = ","
    progress: Callable[[str, float], None] | None = None  # (phase, share done)
    tenant: Tenant = field(default_factory=require_current_tenant)
    result: ImportResult = field(init=False)
    stage: str = field(init=False)  # the file's cells as text (or typed, on the fast path)
    clean: str = field(init=False)  # the parsed values and each row's failed checks
    checks: list[tuple[str, str]] = field(init=False, default_factory=list)  # (column, reason)
    cur: Any = field(init=False, default=None)  # a Django cursor while it executes
    stubs: int = field(init=False, default=0)  # products it made for unknown SKUs

    def __post_init__(self) -> None:
        self.result = ImportResult(kind=self.fmt.kind)
        suffix = secrets.token_hex(4)
        self.stage, self.clean = f"import_stage_{suffix}", f"import_clean_{suffix}"

    def report(self, phase: str, share: float) -> None:
        if self.progress:
            self.progress(phase, share)

    def execute(self) -> ImportResult:
        try:
            with transaction.atomic(), connection.cursor() as cur:
                self.cur = cur
                self._steps()
        except Invalid:
            raise ImportFailed(self.result) from None
        finally:
            self.cur = None
        refresh_after_commit(self.fmt.table, self.tenant.pk, self.result.created)
        if self.stubs:  # a sales file that named a catalog of unknown SKUs made it
            refresh_after_commit("catalog_product", self.tenant.pk, self.stubs)
        return self.result

    def _steps(self) -> None:
        loaded = False
        if not self.options.decimal_comma:
            try:
                with transaction.atomic():
                    load(self, typed=True)
                loaded = True
            except (
                psycopg2.DataError,
                DataError,
                psycopg2.errors.BadCopyFileFormat,
                NonDecimalNumbers,
            ):
                self.source.seek(0)
        if not loaded:
            load(self, typed=False)
        collect_errors(self)
        result = self.result
        if result.error_count and not self.options.skip_invalid:
            raise Invalid
        result.skipped = count_invalid(self) if result.error_count else 0
        one_spelling(self)
        if self.options.create_missing_products and self.fmt.names_product:
            create_stub_products(self)
        self.report("writing", 0.0)
        try:
            with transaction.atomic():
                created, updated = upsert(self)
        except (IntegrityError, ProgrammingError) as exc:
            # Two rows of the file with one key: ON CONFLICT refuses to touch a row twice
            # (cardinality violation), a plain INSERT hits the unique index.
            duplicate = (psycopg2.errors.CardinalityViolation, psycopg2.errors.UniqueViolation)
            if not isinstance(exc.__cause__, duplicate):
                raise
            duplicate_errors(self)
            if not self.result.error_count:  # another index's (no key of the file repeats)
                raise
            raise Invalid from exc
        result.created, result.updated = created, updated
        result.unchanged = result.rows - result.skipped - created - updated
        self.cur.execute(f"DROP TABLE IF EXISTS {self.clean}, {self.stage}")


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
    reading = (lambda share: progress("reading", share)) if progress else None
    with open(path, "rb") as handle:
        result = ImportRun(
            fmt=fmt,
            mapping=mapping,
            options=options,
            source=ProgressReader(handle, size, reading),
            encoding=sniffed.encoding,
            delimiter=sniffed.delimiter,
            progress=progress,
        ).execute()
    result.encoding, result.delimiter = sniffed.encoding, sniffed.delimiter
    result.headers = sniffed.headers
    return result


def import_rows(
    *, kind: str, rows: list[dict], options: ImportOptions | None = None
) -> ImportResult:
    """Import JSON objects (the API's bulk upsert). Errors name the array index as `row`."""
    options = options or ImportOptions()
    fmt = get_format(kind)
    if not rows:
        raise failure(kind, "no rows given")
    headers: list[str] = []
    for row in rows:
        if not isinstance(row, dict):
            raise failure(kind, "each row must be a JSON object")
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
        result = ImportRun(fmt=fmt, mapping=mapping, options=options, source=data).execute()
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
