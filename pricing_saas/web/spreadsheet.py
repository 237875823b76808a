"""Cells for files people open in a spreadsheet (CSV and XLSX exports, publisher files).

A spreadsheet runs a cell that starts like a formula (=, +, -, @, tab, carriage return), so a
product title such as `=HYPERLINK(...)` from an imported catalog would run on the merchant's
machine. Such text gets a leading apostrophe (shown as text, never run); a plain number such
as -1.2 or +5 cannot call anything and is left as it is (a SKU like -0012 re-imports unchanged).
One rule for every export: the SQL exports use `sql_safe`, built from the same two patterns
(both are valid as Python and as Postgres regular expressions).
"""

from __future__ import annotations

import re

FORMULA_START = r"^[=+\-@\t\r]"
PLAIN_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_formula, _number = re.compile(FORMULA_START), re.compile(PLAIN_NUMBER)


def safe_cell(value):
    """The value to write in a cell: formula-like text quoted, everything else unchanged."""
    if isinstance(value, str) and _formula.match(value) and not _number.match(value):
        return "'" + value
    return value


def sql_safe(expr: str) -> str:
    """The same rule as a Postgres expression over a text column (COPY ... TO exports)."""
    return (
        f"CASE WHEN {expr} ~ '{FORMULA_START}' AND {expr} !~ '{PLAIN_NUMBER}' "
        f"THEN '''' || {expr} ELSE {expr} END"
    )


def write_csv(rows, out) -> None:
    """Write rows (header first) as CSV to the text file-like `out`, every cell through
    safe_cell; None is an empty cell."""
    import csv

    writer = csv.writer(out)
    for row in rows:
        writer.writerow(["" if v is None else safe_cell(v) for v in row])


def write_xlsx(rows, path, title: str = "export") -> None:
    """Write rows (header first) as an .xlsx workbook at `path` (openpyxl write-only mode, one
    row at a time). Text goes through safe_cell and is stored as text, so openpyxl never writes
    a string starting with "=" as a formula; numbers stay numbers."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title[:31])

    def cell(value):
        if isinstance(value, str):
            text = WriteOnlyCell(sheet, value=safe_cell(value))
            text.data_type = "s"
            return text
        return value

    for row in rows:
        sheet.append([cell(v) for v in row])
    workbook.save(path)
