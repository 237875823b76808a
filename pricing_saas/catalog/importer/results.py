"""What an import reports: the errors (row, column, value, reason) and the counts."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_REPORTED_ERRORS = 1000


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


def failure(kind: str, reason: str, row: int | None = None, column: str | None = None, value=None):
    """An ImportFailed with one error (a file that cannot be read at all)."""
    return ImportFailed(
        ImportResult(kind=kind, error_count=1, errors=[RowError(row, column, value, reason)])
    )


class Invalid(Exception):
    """Inside a run: roll the transaction back; the errors are in the run's result."""
