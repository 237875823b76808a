"""The one rule every export uses for cells a spreadsheet would run."""

from __future__ import annotations

import pytest

from pricing_saas.web.spreadsheet import safe_cell


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
        ("-0012", "-0012"),  # a SKU that looks like a number re-imports unchanged
        ("1e5", "1e5"),
        ("-inf", "'-inf"),  # not a plain number: quoted
        ("\t1", "'\t1"),
        ("Mug = cup", "Mug = cup"),
        ("", ""),
        (None, None),
        (3.5, 3.5),
    ],
)
def test_formula_like_text_is_quoted_and_nothing_else(value, expected):
    assert safe_cell(value) == expected


@pytest.mark.django_db
def test_the_sql_exports_apply_the_same_rule():
    from django.db import connection

    from pricing_saas.web.spreadsheet import sql_safe

    values = ["=HYPERLINK(1)", "+cmd", "-2+3", "@SUM(A1)", "\tTab", "\rCR", "-1.2", "+5",
              "-0012", "1e5", "-inf", "Mug = cup", ""]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {sql_safe('v')} FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, i) ORDER BY i",
            [values],
        )
        got = [row[0] for row in cursor.fetchall()]
    assert got == [safe_cell(v) for v in values]


def test_csv_and_xlsx_writers_quote_formulas_and_keep_numbers(tmp_path):
    import csv
    import io
    from decimal import Decimal

    from openpyxl import load_workbook

    from pricing_saas.web.spreadsheet import write_csv, write_xlsx

    rows = [["sku", "title", "price", "gain"], ["-0012", "=1+1", Decimal("9.50"), None]]
    out = io.StringIO()
    write_csv(rows, out)
    assert list(csv.reader(io.StringIO(out.getvalue())))[1] == ["-0012", "'=1+1", "9.50", ""]
    write_xlsx(rows, tmp_path / "x.xlsx", title="recommendations")
    sheet = load_workbook(tmp_path / "x.xlsx")["recommendations"]
    sku, title, price, gain = next(sheet.iter_rows(min_row=2))
    assert (title.value, title.data_type) == ("'=1+1", "s")
    assert (sku.value, sku.data_type) == ("-0012", "s")
    assert price.value == 9.5 and price.data_type == "n" and gain.value is None
