"""Encoding, delimiter, header and a preview of a CSV file, from its first 64 KB."""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from .results import failure

SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
NUL_BYTE = (
    "contains a NUL byte (0x00), which a text file never holds: the file is probably a "
    "spreadsheet or export saved in another format; save it as CSV (UTF-8)"
)


@dataclass
class Sniffed:
    encoding: str  # Postgres name: UTF8, WIN1252, LATIN1
    python_encoding: str
    delimiter: str
    headers: list[str]
    preview: list[list[str]]


def sniff(path: str | Path, kind: str = "", preview_rows: int = 10) -> Sniffed:
    """Encoding, delimiter, header and a preview, from the first 64 KB of the file."""
    with open(path, "rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if not sample.strip():
        raise failure(kind, "the file is empty")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise failure(kind, "UTF-16 files are not supported: save the file as UTF-8 CSV")
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
    nul = sample.find(b"\x00")
    if nul != -1:
        row, index = _where(sample[:nul].decode(python_encoding, errors="replace"), delimiter)
        column = headers[index].replace("\x00", "") if index < len(headers) else None
        raise failure(kind, NUL_BYTE, row=row, column=column)
    preview = []
    for row in reader:
        if len(preview) >= preview_rows:
            break
        preview.append(row)
    return Sniffed(encoding, python_encoding, delimiter, headers, preview)


def _where(before: str, delimiter: str) -> tuple[int, int]:
    """The row (line of the file, the header is 1) and column index of the character that
    follows `before` (the file's text up to it; a quoted cell holding a line break counts as
    the line it starts on)."""
    rows = list(csv.reader(io.StringIO(before + "\uffff"), delimiter=delimiter))
    line = sum(1 + sum(cell.count("\n") for cell in r) for r in rows[:-1]) + 1
    return line, max(len(rows[-1]) - 1, 0) if rows else 0
