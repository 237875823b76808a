"""The one rule every export uses for cells a spreadsheet would run."""

from __future__ import annotations

import pytest

from pricing_saas.spreadsheet import safe_cell


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTab", "'\tTab"),
        ("\rReturn", "'\rReturn"),
        ("-1.2", "-1.2"),  # a negative number stays a number
        ("+5", "+5"),
        ("Mug = cup", "Mug = cup"),
        ("", ""),
        (None, None),
        (3.5, 3.5),
    ],
)
def test_formula_like_text_is_quoted_and_nothing_else(value, expected):
    assert safe_cell(value) == expected
