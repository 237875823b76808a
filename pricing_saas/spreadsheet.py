"""Cells for files people open in a spreadsheet (CSV and XLSX exports, publisher files).

A spreadsheet runs a cell that starts like a formula (=, +, -, @, tab, carriage return), so a
product title such as `=HYPERLINK(...)` from an imported catalog would run on the merchant's
machine. Such text gets a leading apostrophe (shown as text, never run); plain numbers such as
-1.2 are left as they are. One rule for every export: the SQL exports use the same pattern.
"""

from __future__ import annotations

FORMULA_CHARS = "=+-@\t\r"
SQL_FORMULA_PATTERN = "^[=+\\-@\\t\\r]"  # POSIX regex for Postgres' ~ operator


def safe_cell(value):
    """The value to write in a cell: formula-like text quoted, everything else unchanged."""
    if not isinstance(value, str) or not value or value[0] not in FORMULA_CHARS:
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value
