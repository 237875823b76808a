"""What each column of a file becomes: a canonical column, a product attribute, or nothing."""

from __future__ import annotations

from dataclasses import dataclass

from ..formats import Format, normalise_header, suggest
from .results import ImportFailed, ImportResult, RowError

IGNORE = "__ignore__"  # the column map's target for a column to leave out


@dataclass
class Mapping:
    """What each file column becomes: a canonical column, a product attribute, or nothing."""

    targets: list[tuple[str, str]]  # (role, name): role is "column", "attribute" or "ignore"
    present: list[str]  # canonical columns present

    def columns(self) -> dict[str, int]:
        """Canonical column -> its index in the file."""
        return {name: i for i, (role, name) in enumerate(self.targets) if role == "column"}


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
            hint = suggest(canonical, fmt.names)
            reason = f"unknown column{hint}; expected {', '.join(fmt.names)}"
            errors.append(RowError(1, original, None, reason))
            targets.append(("ignore", original))
    for column in fmt.columns:
        if column.required and column.name not in seen:
            pool = unknown or [t[1] for t in targets if t[0] == "attribute"]
            hint = suggest(column.name, [normalise_header(u) for u in pool])
            errors.append(RowError(1, column.name, None, f"missing required column{hint}"))
    if errors:
        raise ImportFailed(ImportResult(kind=fmt.kind, error_count=len(errors), errors=errors))
    return Mapping(targets=targets, present=list(seen))
