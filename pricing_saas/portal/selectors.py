"""The portal's reads that belong to no domain app."""

from __future__ import annotations

import json

from pricing_saas.web.spreadsheet import safe_cell

EXPORT_HEADER = [
    "time",
    "actor",
    "action",
    "target_type",
    "target_id",
    "summary",
    "before",
    "after",
]


def export_rows(queryset):
    """CSV rows of audit events (for owners): header first, then one row per event."""
    yield EXPORT_HEADER
    for event in queryset.order_by("-created_at").iterator(chunk_size=2000):
        row = [
            event.created_at.isoformat(), event.actor, event.action, event.target_type,
            event.target_id, event.summary,
            json.dumps(event.before, ensure_ascii=False) if event.before is not None else "",
            json.dumps(event.after, ensure_ascii=False) if event.after is not None else "",
        ]  # fmt: skip
        yield [safe_cell(v) for v in row]


def _plain_value(value) -> str:
    if value is None or value == "":
        return "—"
    if value is True or value is False:
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_plain_value(v) for v in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain_value(v)}" for k, v in value.items()) or "—"
    return str(value)


def changes(before: dict | None, after: dict | None) -> list[dict]:
    """An audit event's before and after as the fields that changed, in plain words (a value
    only before: removed; only after: set), for the audit page."""
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    out = []
    for key in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(key), after.get(key)
        if key in before and key in after and old == new:
            continue
        out.append(
            {
                "field": key.replace("_", " "),
                "before": _plain_value(old) if key in before else None,
                "after": _plain_value(new) if key in after else None,
            }
        )
    return out
