"""Approved prices out to Shopify: `productVariantsBulkUpdate`, one call per product.

Only the changes publishing hands over (approved recommendations and rollbacks, past the kill
switch, price locks and the "price changed since" check) reach this publisher. For each:

1. its SKU must be a variant of the tenant's publishing Shopify connection (`ShopVariant`,
   filled by product syncs), else it fails with the reason;
2. the variant's live price is read first (`nodes`, 250 at a time): a variant the shop no
   longer has fails ("removed"); a live price already equal to the new one counts as done
   (a retry after a half-finished push sends nothing twice); a live price that is neither the
   old nor the new one was changed in the shop by a person: the change fails and the shop's
   price is not overwritten;
3. the rest are sent grouped by product (`allowPartialUpdates`: a `userError` on one variant
   fails only that change, with Shopify's message) and each counts as published only when the
   answer returns the variant at the new price. The price written is remembered, so the
   `products/update` webhook that echoes it is recognised.

Network errors, 5xx and throttling past the client's retries raise `TransientPublishError`:
the publish task retries with backoff. A refused token fails the changes and marks the
connection failing.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from ..publishers import ChangeRow, PushResult
from ..pushing import (
    CENT,
    ShopPublisher,
    chunks,
    plan,
    remember_pushed,
    remember_sending,
    variants_of,
)
from . import queries
from .client import ShopifyClient, ShopifyError, ShopifyTransientError


class ShopifyPublisher(ShopPublisher):
    name, label = "shopify", "Shopify (the connected shop)"
    platform = "shopify"

    def client_for(self, connection):
        from .connector import client_for

        return client_for(connection)

    def send(self, client, connection, rows):
        return push_changes(client, connection, rows)


def live_prices(client: ShopifyClient, refs: list[str]) -> dict[str, tuple[Decimal, str]]:
    live: dict[str, tuple[Decimal, str]] = {}
    for chunk in chunks(refs, queries.PRICES_PAGE):
        variables = {"ids": chunk}
        data = client.execute(
            queries.VARIANT_PRICES,
            variables,
            operation=f"VariantPrices:{len(chunk)}",
            estimate=queries.estimate("VariantPrices", variables),
        )
        for node in data.get("nodes") or []:
            if node and node.get("id") and node.get("price") is not None:
                live[node["id"]] = (Decimal(str(node["price"])), node["product"]["id"])
    return live


def push_changes(client: ShopifyClient, connection, rows: list[ChangeRow]) -> list[PushResult]:
    variants = variants_of(connection, rows)
    live = live_prices(client, sorted({variants[r.sku][1] for r in rows if r.sku in variants}))
    results, sendable = plan(
        rows,
        {sku: refs[1] for sku, refs in variants.items()},
        {ref: price for ref, (price, _product) in live.items()},
        shop_url=connection.shop_url,
    )
    to_send: dict[str, list[tuple[ChangeRow, str]]] = defaultdict(list)
    for row, ref in sendable:
        to_send[live[ref][1]].append((row, ref))
    for product_ref, items in to_send.items():
        for chunk in chunks(items, queries.PRICES_PAGE):
            remember_sending(connection, chunk)
            written: list[tuple[str, Decimal]] = []
            _send(client, product_ref, chunk, results, written)
            remember_pushed(connection, written)  # batch by batch: a failure later keeps it
    return [results[r.change_id] for r in rows]


def _send(client, product_ref: str, chunk, results: dict, written: list) -> None:
    variables = {
        "productId": product_ref,
        "variants": [{"id": ref, "price": f"{row.new_price.quantize(CENT)}"} for row, ref in chunk],
    }
    try:
        data = client.execute(
            queries.VARIANTS_BULK_UPDATE,
            variables,
            operation="VariantsBulkUpdate",
            estimate=queries.MUTATION_COST,
        )
    except ShopifyTransientError:
        raise
    except ShopifyError as exc:
        for row, _ref in chunk:
            results[row.change_id] = PushResult(row.change_id, False, f"Shopify: {exc}")
        return
    payload = data.get("productVariantsBulkUpdate") or {}
    failed: dict[int, str] = {}
    for error in payload.get("userErrors") or []:
        path = error.get("field") or []
        message = error.get("message") or error.get("code") or "refused"
        if len(path) >= 2 and path[0] == "variants" and str(path[1]).isdigit():
            failed[int(path[1])] = message
        else:  # about the whole call (the product is gone)
            for i in range(len(chunk)):
                failed.setdefault(i, message)
    updated = {v["id"]: Decimal(str(v["price"])) for v in payload.get("productVariants") or []}
    for i, (row, ref) in enumerate(chunk):
        target = row.new_price.quantize(CENT)
        if i in failed:
            results[row.change_id] = PushResult(row.change_id, False, f"Shopify: {failed[i]}")
        elif updated.get(ref) == target:
            results[row.change_id] = PushResult(row.change_id, True)
            written.append((ref, target))
        else:
            results[row.change_id] = PushResult(
                row.change_id, False, "Shopify did not confirm the new price"
            )
