"""Limit/offset pagination that refuses what it cannot read.

DRF's paginator falls back to its defaults on `?limit=abc` or `?offset=-1`, so a client's typo
silently returns another page than asked for. Here a malformed value is a 400 naming the
parameter; a limit above `max_limit` is still cut to it (documented in the schema).
"""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

MAX_OFFSET = 2**31 - 1  # far past any tenant's rows; keeps the SQL OFFSET in range


def query_int(request, name: str, *, minimum: int, maximum: int) -> int | None:
    """The integer query parameter `name`, None when absent; anything else is a 400."""
    if name not in request.query_params:
        return None
    raw = request.query_params[name]
    if not raw.isascii() or not raw.isdigit():
        raise ValidationError({name: [f"{name} must be a whole number"]}, code="invalid")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValidationError(
            {name: [f"{name} must be between {minimum} and {maximum}"]}, code="out_of_range"
        )
    return value


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000

    def get_limit(self, request):
        limit = query_int(request, self.limit_query_param, minimum=1, maximum=MAX_OFFSET)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request):
        offset = query_int(request, self.offset_query_param, minimum=0, maximum=MAX_OFFSET)
        return offset or 0

    def get_schema_operation_parameters(self, view):
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_OFFSET}
        limit["description"] = (
            f"Number of results to return per page (default {self.default_limit}; "
            f"more than {self.max_limit} returns {self.max_limit})."
        )
        offset["schema"] = {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}
        return [limit, offset]
