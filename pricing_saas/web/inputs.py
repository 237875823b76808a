"""Numbers and date-times from requests: what every API field, filter and page accepts, defined
once, with the serializer fields, filters and form fields built on it.

A number is a JSON number or decimal text: an optional sign, digits, an optional fraction and
exponent (`12`, `-0.5`, `1.2e3`). Refused, each with its reason: NaN and ±Infinity (compared with
NaN, a filter matched every row), hexadecimal, octal or binary (`0x10`: Python and Postgres 16
read 16), digit separators (`1_000`), and a value beyond what the field can hold (overflow:
`1e400`, a price above its column's precision).

A date-time is ISO 8601 whose time-zone offset lies within ±15:59 (Postgres refuses larger ones,
which made `?since=...+16:00` a server error).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation

import django_filters
from django import forms
from rest_framework import serializers

from .errors import ServiceError

# Decimal text: what `float()`, `Decimal()` and Postgres read the same way, and nothing more.
DECIMAL_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
_NON_FINITE = re.compile(r"\s*[+-]?(?:nan|s?nan|inf|infinity)\s*", re.IGNORECASE)
_NON_DECIMAL = re.compile(r"\s*[+-]?0[xob]", re.IGNORECASE)
MAX_TEXT = 100  # characters of a number

NOT_FINITE = "must be a finite number, not NaN or Infinity"
NOT_DECIMAL = "must be a decimal number (hexadecimal, octal or binary are not accepted)"
NOT_A_NUMBER = "must be a number such as 12.50"
# `1_000`: Python's float() and Postgres 16 read it as 1000; refused with its own reason.
NOT_SEPARATED = "must be written without digit separators (1000, not 1_000)"
_SEPARATED = re.compile(r"\s*[+-]?[0-9.]*[0-9]_[0-9][0-9_.eE+-]*\s*")
NOT_WHOLE = "must be a whole number"
FLOAT_LIMIT = 1e15  # the magnitude a plain number field accepts (sizes, shares, money per day)
INTEGER_LIMIT = 2**63 - 1  # a bigint column
PRICE_LIMIT = Decimal("9999999999.9999")  # what a price column, numeric(14, 4), holds

# Postgres accepts offsets of at most 15:59 (ISO 8601 allows more; no zone uses more than 14:00).
MAX_UTC_OFFSET = dt.timedelta(hours=15, minutes=59)
OFFSET_OUT_OF_RANGE = "the time-zone offset must be between -15:59 and +15:59"


class BadInput(ValueError):
    """A value a request may not send: `reason` says why (for the error's `detail`)."""

    def __init__(self, reason: str, code: str = "invalid"):
        super().__init__(reason)
        self.reason, self.code = reason, code


def parse_number(value, *, limit: float | Decimal | None = None) -> Decimal:
    """The exact value of a JSON number or decimal text; BadInput when it is not a finite
    decimal number or its magnitude exceeds `limit`."""
    if isinstance(value, bool) or value is None:
        raise BadInput(NOT_A_NUMBER)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadInput(NOT_FINITE, "not_finite")
        number = Decimal(repr(value))
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise BadInput(NOT_FINITE, "not_finite")
        number = value
    elif isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise BadInput(f"at most {MAX_TEXT} characters", "max_string_length")
        if not DECIMAL_TEXT.fullmatch(value):
            if _NON_FINITE.fullmatch(value):
                raise BadInput(NOT_FINITE, "not_finite")
            if _NON_DECIMAL.match(value):
                raise BadInput(NOT_DECIMAL, "not_decimal")
            if _SEPARATED.fullmatch(value):
                raise BadInput(NOT_SEPARATED, "digit_separator")
            raise BadInput(NOT_A_NUMBER)
        try:
            number = Decimal(value.strip())
        except InvalidOperation:  # an exponent beyond what Decimal holds
            raise BadInput(out_of_range(limit), "out_of_range") from None
    else:
        raise BadInput(NOT_A_NUMBER)
    if limit is not None and number.copy_abs() > Decimal(str(limit)):
        raise BadInput(out_of_range(limit), "out_of_range")
    return number


def parse_float(value, *, limit: float = FLOAT_LIMIT) -> float:
    return float(parse_number(value, limit=limit))


def require_integer(value, *, attr: str, limit: int = INTEGER_LIMIT) -> int:
    """A whole number for a service (an id, a count): a bad value is a ServiceError naming
    `attr`."""
    try:
        number = parse_number(value, limit=limit)
        if number != number.to_integral_value():
            raise BadInput(NOT_WHOLE)
    except BadInput as exc:
        reason = NOT_WHOLE if exc.reason == NOT_A_NUMBER else exc.reason
        raise ServiceError(f"{attr} {reason}", code=exc.code, attr=attr) from None
    return int(number)


def out_of_range(limit) -> str:
    if limit is None:
        return "out of range"
    shown = f"{limit:g}" if isinstance(limit, float) else str(limit)
    return f"out of range (at most {shown} in magnitude)"


def check_utc_offset(value: dt.datetime) -> dt.datetime:
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        raise BadInput(OFFSET_OUT_OF_RANGE, "offset_out_of_range")
    return value


def require_number(value, *, attr: str, limit: float = FLOAT_LIMIT) -> float:
    """`parse_float` for a service: a bad value is a ServiceError naming `attr`."""
    try:
        return parse_float(value, limit=limit)
    except BadInput as exc:
        raise ServiceError(f"{attr} {exc.reason}", code=exc.code, attr=attr) from None


# --- REST framework fields ---------------------------------------------------------------------


class _StrictNumber:
    """Runs `parse_number` first, so NaN, Infinity, hexadecimal and overflow get their reason
    and the field's name in the 400, whatever the field's own parsing would have done."""

    limit: float | None = None

    def to_internal_value(self, data):
        try:
            parse_number(data, limit=self.limit)
        except BadInput as exc:
            raise serializers.ValidationError(exc.reason, code=exc.code) from None
        return super().to_internal_value(data)


class FloatField(_StrictNumber, serializers.FloatField):
    limit = FLOAT_LIMIT

    def __init__(self, *args, limit: float = FLOAT_LIMIT, **kwargs):
        self.limit = limit
        super().__init__(*args, **kwargs)


class DecimalField(_StrictNumber, serializers.DecimalField):
    """Overflow is the field's own `max_digits`."""


class IntegerField(_StrictNumber, serializers.IntegerField):
    limit = INTEGER_LIMIT


# --- form fields and django-filter filters -----------------------------------------------------


class NumberFormField(forms.DecimalField):
    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_number(value, limit=FLOAT_LIMIT)
        except BadInput as exc:
            raise forms.ValidationError(exc.reason, code=exc.code) from None


class IsoDateTimeFormField(django_filters.fields.IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is not None:
            try:
                check_utc_offset(parsed)
            except BadInput as exc:
                raise forms.ValidationError(exc.reason, code=exc.code) from None
        return parsed


class NumberFilter(django_filters.NumberFilter):
    field_class = NumberFormField

    def get_max_validator(self):
        return None  # parse_number's limit


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = IsoDateTimeFormField
