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

The modules, in the order a run uses them:
- `sniff`: encoding, delimiter, header and preview of a file; `xlsx`: a workbook to CSV.
- `headers`: what each file column becomes (`map_headers`, the `Mapping`).
- `run`: `ImportOptions`, `ImportRun` (one import: its format, mapping, options, source, tenant,
  progress callback, result and temporary tables) and the entry points `import_file`,
  `import_rows`.
- `rows`: COPY into the staging table, the SQL pass into the clean table, the error report;
  `parse`: the SQL that parses a cell and the checks on it.
- `upsert`: the bulk write, built from the format definitions (`..formats`): no kind is named.
- `results`: `RowError`, `ImportResult`, `ImportFailed`.
"""

from .headers import IGNORE, Mapping, map_headers
from .results import MAX_REPORTED_ERRORS, ImportFailed, ImportResult, RowError
from .run import ImportOptions, ImportRun, import_file, import_rows
from .sniff import Sniffed, sniff
from .xlsx import xlsx_to_csv

__all__ = [
    "IGNORE",
    "MAX_REPORTED_ERRORS",
    "ImportFailed",
    "ImportOptions",
    "ImportResult",
    "ImportRun",
    "Mapping",
    "RowError",
    "Sniffed",
    "import_file",
    "import_rows",
    "map_headers",
    "sniff",
    "xlsx_to_csv",
]
