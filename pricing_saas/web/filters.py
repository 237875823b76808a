"""The API's query filters (django-filter), refusing what they cannot read.

django-filter reads `?active=maybe` as "no filter" and `?status=` as "any status", so a typo
silently returns every row. `FilterBackend` (REST_FRAMEWORK's DEFAULT_FILTER_BACKENDS) answers 400
naming the parameter instead, for every view's FilterSet whatever its base class:

- a boolean filter takes true, false, 1 or 0 (any case), nothing else;
- only a text filter may be given empty; a number, date, choice or id must have a value (or be
  left out);
- then the FilterSet's own form validation (numbers, dates, choices), as django-filter does.
"""

from __future__ import annotations

import django_filters
from django_filters import rest_framework as drf_filters
from django_filters.utils import translate_validation
from rest_framework.exceptions import ValidationError

BOOLEAN_VALUES = {"true", "false", "1", "0"}


def query_bool(params, name: str, *, default: bool = False) -> bool:
    """The boolean query parameter `name` (true, false, 1 or 0), `default` when absent."""
    if name not in params:
        return default
    value = params[name].lower()
    if value not in BOOLEAN_VALUES:
        raise ValidationError({name: ["must be true or false"]}, code="invalid")
    return value in ("true", "1")


def refuse_blank(params, names) -> None:
    """A 400 for any of `names` given empty: a number, date, choice or id has a value or is
    left out (HTML forms send `?job=` for "any"; API clients mean something else)."""
    for name in names:
        if params.get(name) == "":
            raise ValidationError(
                {name: ["must not be empty (leave the parameter out instead)"]}, code="blank"
            )


def read_query(filters: dict, params):
    """`params` checked against a FilterSet's `filters`, booleans spelt as every widget reads
    them ("true" / "false")."""
    data = params.copy()
    typed = []
    for name, query_filter in filters.items():
        if isinstance(query_filter, django_filters.BooleanFilter):
            if name in params:
                data[name] = "true" if query_bool(params, name) else "false"
        elif not isinstance(query_filter, django_filters.CharFilter):
            typed.append(name)
    refuse_blank(params, typed)
    return data


class FilterBackend(drf_filters.DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        kwargs = self.get_filterset_kwargs(request, queryset, view)
        kwargs["data"] = read_query(filterset_class.base_filters, request.query_params)
        filterset = filterset_class(**kwargs)
        rescope(filterset)
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        return filterset.qs


def rescope(filterset) -> None:
    """The choices of a filter naming a related object (`job`, `publication`, ...) read in this
    request's tenant. A FilterSet's querysets are built once, when its class is: had that
    happened under a tenant (the first request of a process loads the URLs inside the portal's
    tenant middleware), every later request would choose among that tenant's objects, and
    another tenant's own ids would be refused as invalid choices. Each filter is this
    instance's own copy, so setting it here touches no other request."""
    for item in filterset.filters.values():
        queryset = getattr(item, "queryset", None)
        if hasattr(queryset, "model"):  # a QuerySet (a callable is asked per request anyway)
            item.queryset = item.extra["queryset"] = queryset.model._default_manager.all()
            item.__dict__.pop("_field", None)  # a form field built before holds the old one
