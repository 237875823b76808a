"""Limit/offset pagination that refuses what it cannot read.

DRF's paginator falls back to its defaults on `?limit=abc` or `?offset=-1`, so a client's typo
silently returns another page than asked for. Here a malformed value is a 400 naming the
parameter; a limit above `max_limit` is still cut to it (documented in the schema).
`page_size` is another name for `limit` (what most clients send): the same checks and maximum;
giving both is a 400.
"""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.utils.urls import remove_query_param, replace_query_param

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

    page_size_query_param = "page_size"  # another name for limit

    def get_limit(self, request):
        limit = query_int(request, self.limit_query_param, minimum=1, maximum=MAX_OFFSET)
        size = query_int(request, self.page_size_query_param, minimum=1, maximum=MAX_OFFSET)
        if limit is not None and size is not None:
            raise ValidationError(
                {self.page_size_query_param: ["give limit or page_size, not both"]},
                code="repeated",
            )
        limit = size if limit is None else limit
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_next_link(self):
        return self._named_as_asked(super().get_next_link())

    def get_previous_link(self):
        return self._named_as_asked(super().get_previous_link())

    def _named_as_asked(self, url: str | None) -> str | None:
        """A page link names the size as the request did (`page_size` stays `page_size`),
        never both names: followed, it is the next page, not a 400."""
        if url is None or self.page_size_query_param not in self.request.query_params:
            return url
        url = remove_query_param(url, self.limit_query_param)
        return replace_query_param(url, self.page_size_query_param, self.limit)

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
        page_size = {
            "name": self.page_size_query_param,
            "required": False,
            "in": "query",
            "description": f"Another name for limit (the same default and maximum, "
            f"{self.max_limit}); give one of the two.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_OFFSET},
        }
        return [limit, offset, page_size]
