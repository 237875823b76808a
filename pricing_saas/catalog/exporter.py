"""Exports in the canonical formats (CSV through Postgres COPY, XLSX through openpyxl), with
every text cell that a spreadsheet would run as a formula neutralised by a leading apostrophe."""

from __future__ import annotations

from django.db import connection, transaction

from pricing_saas.web.spreadsheet import sql_safe
from tenants.bulk import copy_out
from tenants.context import require_current_tenant

from .formats import EXPORT_COLUMNS, get_format

MAX_ATTRIBUTE_COLUMNS = 200


def _neutral(expr: str) -> str:
    return sql_safe(expr)


def _money(expr: str) -> str:
    return f"trim_scale({expr})"


def _bool(expr: str) -> str:
    return f"CASE WHEN {expr} THEN 'true' ELSE 'false' END"


def _attribute_keys(cur, tenant_id: int) -> list[str]:
    cur.execute(
        "SELECT k FROM (SELECT DISTINCT jsonb_object_keys(attributes) AS k FROM catalog_product "
        f"WHERE tenant_id = {tenant_id}) keys ORDER BY k LIMIT {MAX_ATTRIBUTE_COLUMNS}"
    )
    return [row[0] for row in cur.fetchall()]


def export_query(kind: str, cur) -> tuple[str, list[str]]:
    """The SELECT that produces the export (columns in canonical order) and its header."""
    get_format(kind)
    t = int(require_current_tenant().pk)
    header = list(EXPORT_COLUMNS[kind])
    if kind == "products":
        text = {"sku", "title", "description", "category", "brand", "currency"}
        money = {"cost", "price", "min_price", "max_price", "map_price"}
        cols = [
            _neutral(c)
            if c in text
            else _money(c)
            if c in money
            else _bool(c)
            if c == "active"
            else c
            for c in header
        ]
        for key in _attribute_keys(cur, t):
            literal = "'" + key.replace("'", "''") + "'"
            cols.append(_neutral(f"(attributes ->> {literal})"))
            header.append(key)
        sql = f"SELECT {', '.join(cols)} FROM catalog_product WHERE tenant_id = {t} ORDER BY sku"
    elif kind == "sales":
        sql = (
            f"SELECT s.date, {_neutral('p.sku')}, s.units, {_money('s.price')}, "
            f"{_money('s.revenue')}, {_bool('s.promo')}, {_neutral('s.channel')} "
            "FROM catalog_salesrecord s JOIN catalog_product p ON p.id = s.product_id "
            f"WHERE s.tenant_id = {t} ORDER BY s.date, p.sku, s.channel"
        )
    else:
        observed = "to_char(o.observed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        sql = (
            f"SELECT {_neutral('p.sku')}, {_neutral('o.competitor')}, {_money('o.price')}, "
            f"{observed}, {_bool('o.in_stock')}, {_neutral('o.url')} "
            "FROM catalog_competitoroffer o JOIN catalog_product p ON p.id = o.product_id "
            f"WHERE o.tenant_id = {t} ORDER BY o.observed_at, p.sku, o.competitor"
        )
    return sql, header


def export_csv(kind: str, out) -> None:
    """Write the export as UTF-8 CSV to the binary file-like `out` (streamed by COPY)."""
    with transaction.atomic(), connection.cursor() as cur:
        sql, header = export_query(kind, cur)
        out.write((",".join(_csv_header(h) for h in header) + "\n").encode())
        copy_out(cur, sql, out)


def _csv_header(name: str) -> str:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerow([name])
    return buffer.getvalue().strip("\r\n")


def export_xlsx(kind: str, path) -> None:
    """Write the export as an .xlsx workbook (openpyxl write-only mode, rows fetched in batches)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(kind)
    with transaction.atomic(), connection.cursor() as cur:
        sql, header = export_query(kind, cur)
        sheet.append(header)
        cur.execute(sql)
        while rows := cur.fetchmany(5000):
            for row in rows:
                sheet.append([_xlsx_value(sheet, WriteOnlyCell, v) for v in row])
    workbook.save(path)


def _xlsx_value(sheet, cell_class, value):
    if isinstance(value, str):
        # The SQL already prefixed formula-like text; also store every string as text, so
        # openpyxl never writes a string starting with "=" as a formula.
        cell = cell_class(sheet, value=value)
        cell.data_type = "s"
        return cell
    return value
