"""The publisher interface: how approved price changes leave the system.

A publisher receives the changes of one publication and answers per change. The pricing app
owns the state (pending → published / failed, retries, price history); a publisher only talks
to the outside. Shop connectors (Shopify, WooCommerce) implement the same interface:

- `push(rows)`: send the changes; return a result per change. Raise `TransientPublishError`
  for a failure worth retrying as a whole (timeout, rate limit, 5xx): the task retries with
  backoff. A per-change rejection (unknown SKU on the shop, price refused) is a failed result.
- `confirm(rows)`: for platforms that apply changes asynchronously, report which have taken
  effect. File publishers are synchronous: everything pushed is confirmed.

This module knows nothing of Django models; it takes and returns plain rows.
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal

from pricing_saas.web.spreadsheet import safe_cell


class TransientPublishError(Exception):
    """The whole push failed for a reason that may pass (network, rate limit): retry later."""


@dataclass(frozen=True)
class ChangeRow:
    change_id: int
    sku: str
    title: str
    old_price: Decimal
    new_price: Decimal
    currency: str
    kind: str = "recommendation"


@dataclass(frozen=True)
class PushResult:
    change_id: int
    ok: bool
    error: str = ""


@dataclass
class PushOutcome:
    results: list[PushResult]
    file_name: str = ""
    file_bytes: bytes = b""  # a file publisher's artifact, stored with the publication
    content_type: str = ""


class Publisher(ABC):
    name: str = ""
    label: str = ""
    # True for a shop's API (its changes are marked sent before the call, and count as
    # published only on the shop's confirmation); False for a file made here.
    remote: bool = False

    @abstractmethod
    def push(self, rows: list[ChangeRow], *, reference: str) -> PushOutcome: ...

    def confirm(self, rows: list[ChangeRow]) -> list[PushResult]:
        return [PushResult(row.change_id, True) for row in rows]


HEADER = ["sku", "title", "old_price", "new_price", "currency", "change_id", "kind"]


def _cells(row: ChangeRow) -> list:
    return [
        safe_cell(row.sku),
        safe_cell(row.title),
        f"{row.old_price:.2f}",
        f"{row.new_price:.2f}",
        row.currency,
        row.change_id,
        row.kind,
    ]


class CsvPublisher(Publisher):
    """A CSV file of the new prices for the merchant's shop import (UTF-8, one row per SKU)."""

    name, label = "csv", "CSV file for your shop's import"

    def push(self, rows: list[ChangeRow], *, reference: str) -> PushOutcome:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(HEADER)
        for row in rows:
            writer.writerow(_cells(row))
        return PushOutcome(
            results=[PushResult(row.change_id, True) for row in rows],
            file_name=f"prices-{reference}.csv",
            file_bytes=buffer.getvalue().encode("utf-8"),
            content_type="text/csv",
        )


class XlsxPublisher(Publisher):
    """The same rows as an Excel workbook; every text cell is stored as text, never a formula."""

    name, label = "xlsx", "Excel workbook for your shop's import"

    def push(self, rows: list[ChangeRow], *, reference: str) -> PushOutcome:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("prices")
        sheet.append(HEADER)
        for row in rows:
            cells = []
            for value in _cells(row):
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"
                cells.append(cell)
            sheet.append(cells)
        buffer = io.BytesIO()
        workbook.save(buffer)
        return PushOutcome(
            results=[PushResult(row.change_id, True) for row in rows],
            file_name=f"prices-{reference}.xlsx",
            file_bytes=buffer.getvalue(),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )


PUBLISHERS: dict[str, Publisher] = {p.name: p for p in (CsvPublisher(), XlsxPublisher())}


def register(publisher: Publisher) -> None:
    """Shop connectors register themselves here (and tests register fakes)."""
    PUBLISHERS[publisher.name] = publisher


def get_publisher(name: str) -> Publisher:
    try:
        return PUBLISHERS[name]
    except KeyError:
        raise ValueError(
            f"unknown publisher {name!r}; available: {', '.join(sorted(PUBLISHERS))}"
        ) from None
