"""Workbooks: the first worksheet streamed into a CSV that the importer then reads."""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from pathlib import Path

from .results import failure


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
        raise failure(kind, f"not a readable .xlsx workbook ({exc.__class__.__name__})") from exc
    # A file of its own beside the target (two conversions of one upload, e.g. a redelivered
    # task, never write into each other), renamed into place when complete.
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    partial = Path(name)
    written = seen = 0  # rows written; rows of the sheet read, empty ones included
    try:
        if not workbook.worksheets:
            raise failure(kind, "the workbook has no worksheet")
        with open(handle, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            rows = workbook.worksheets[0].iter_rows(values_only=True)
            while max_rows is None or written < max_rows:
                try:
                    row = next(rows, None)
                except Exception as exc:  # a damaged sheet: bad XML, a truncated zip member
                    raise failure(
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
    if isinstance(value, dt.datetime):
        return value.isoformat() if value.time() != dt.time(0) else value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
