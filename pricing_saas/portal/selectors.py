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
