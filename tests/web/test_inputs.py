"""Numbers and date-times from requests (`pricing_saas/web/inputs.py`): one definition that
every API field, filter and page uses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pricing_saas.web.errors import ServiceError
from pricing_saas.web.inputs import (
    BadInput,
    check_utc_offset,
    parse_number,
    require_integer,
    require_number,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("12.50", Decimal("12.50")),
        (" -0.5 ", Decimal("-0.5")),
        ("1.2e3", Decimal("1.2e3")),
        (".5", Decimal("0.5")),
        (7, Decimal(7)),
        (0.1, Decimal("0.1")),
        (Decimal("3.25"), Decimal("3.25")),
    ],
)
def test_a_decimal_number_is_read_exactly(value, expected):
    assert parse_number(value) == expected


@pytest.mark.parametrize(
    "value, code",
    [
        ("NaN", "not_finite"),
        ("nan", "not_finite"),
        ("Infinity", "not_finite"),
        ("-inf", "not_finite"),
        (float("nan"), "not_finite"),
        (float("inf"), "not_finite"),
        (Decimal("NaN"), "not_finite"),
        ("0x10", "not_decimal"),
        ("0o17", "not_decimal"),
        ("-0b11", "not_decimal"),
        ("1_000", "digit_separator"),
        (" -1_000.5", "digit_separator"),
        ("1__0", "invalid"),
        ("_1", "invalid"),
        ("12,50", "invalid"),
        ("", "invalid"),
        (True, "invalid"),
        (None, "invalid"),
        ([1], "invalid"),
        ("1" * 101, "max_string_length"),
    ],
)
def test_nan_infinity_hex_and_separators_are_refused_with_their_reason(value, code):
    with pytest.raises(BadInput) as refused:
        parse_number(value)
    assert refused.value.code == code and refused.value.reason


@pytest.mark.parametrize("value", ["1e400", "-1e400", 10**400, "1e999999999999"])
def test_a_number_beyond_the_limit_is_out_of_range(value):
    with pytest.raises(BadInput) as refused:
        parse_number(value, limit=1e15)
    assert refused.value.code == "out_of_range" and "1e+15" in refused.value.reason


def test_require_number_names_the_field_in_a_service_error():
    assert require_number("0.25", attr="max_change") == 0.25
    with pytest.raises(ServiceError) as refused:
        require_number("NaN", attr="max_change")
    assert refused.value.attr == "max_change" and refused.value.code == "not_finite"


@pytest.mark.parametrize("value", ["1.5", "abc", "1_0", "0x10", str(2**64)])
def test_require_integer_refuses_what_is_not_a_whole_number_in_range(value):
    with pytest.raises(ServiceError) as refused:
        require_integer(value, attr="job")
    assert refused.value.attr == "job"
    assert require_integer("42", attr="job") == 42


@pytest.mark.parametrize("hours, minutes", [(16, 0), (-16, 0), (23, 59), (-15, -60)])
def test_a_time_zone_offset_of_16_hours_or_more_is_refused(hours, minutes):
    zone = dt.timezone(dt.timedelta(hours=hours, minutes=minutes))
    with pytest.raises(BadInput) as refused:
        check_utc_offset(dt.datetime(2024, 1, 1, 10, tzinfo=zone))
    assert refused.value.code == "offset_out_of_range"


@pytest.mark.parametrize("hours, minutes", [(15, 59), (-15, -59), (14, 0), (0, 0)])
def test_a_time_zone_offset_within_15_59_is_accepted(hours, minutes):
    zone = dt.timezone(dt.timedelta(hours=hours, minutes=minutes))
    value = dt.datetime(2024, 1, 1, 10, tzinfo=zone)
    assert check_utc_offset(value) is value
