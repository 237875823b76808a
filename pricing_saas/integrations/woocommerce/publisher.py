"""Approved prices out to WooCommerce: `products/batch` for simple products and
`products/{id}/variations/batch` for variations, at most 100 updates a call.

Only the changes publishing hands over (approved recommendations and rollbacks, past the kill
switch, price locks and the "price changed since" check) reach this publisher. For each:

1. its SKU must be a product of the tenant's publishing WooCommerce connection (`ShopVariant`,
   filled by product syncs), else it fails with the reason;
2. the live price is read first (`include=`, 100 at a time; a variable product's variations
   through its own listing) and `integrations.pushing.plan` decides: removed in the shop,
   already at the new price (not resent), changed in the shop by a person (not overwritten),
   or to send. A product on sale in the shop fails too: WooCommerce sells at the sale price,
   so writing the regular price would not change what buyers pay;
3. the rest are sent as `regular_price` updates. WooCommerce answers each item of a batch with
   the product as saved or with its own error: a change counts as published only when the
   answer shows the product at the new price; an item's error fails only that change, with
   WooCommerce's message.

Network errors, 5xx and 429 past the client's retries raise `TransientPublishError` (the
publish task retries with backoff; step 2 makes the retry send nothing twice). A refused key
fails the changes and marks the connection failing.
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
from .client import BATCH_MAX, PER_PAGE, WooAuthError, WooClient, WooError, WooTransientError


class WooCommercePublisher(ShopPublisher):
    name, label = "woocommerce", "WooCommerce (the connected shop)"
    platform = "woocommerce"

    def client_for(self, connection):
        from .connector import client_for

        return client_for(connection)

    def send(self, client, connection, rows):
        return push_changes(client, connection, rows)


def _is_variation(product_ref: str, ref: str) -> bool:
    return product_ref != ref


def live_items(client: WooClient, refs: dict[str, str]) -> dict[str, dict]:
    """The shop's current item (product or variation) for each variant ref, keyed by ref;
    refs: variant ref -> product ref. Missing ones are gone from the shop."""
    live: dict[str, dict] = {}
    simple = sorted(ref for ref, product in refs.items() if not _is_variation(product, ref))
    for chunk in chunks(simple, PER_PAGE):
        page = client.page("products", {"include": ",".join(chunk), "status": "any"})
        live.update({str(item.get("id")): item for item in page.items})
    by_product: dict[str, list[str]] = defaultdict(list)
    for ref, product in refs.items():
        if _is_variation(product, ref):
            by_product[product].append(ref)
    for product, wanted in by_product.items():
        for chunk in chunks(sorted(wanted), PER_PAGE):
            try:
                page = client.page(f"products/{product}/variations", {"include": ",".join(chunk)})
            except WooError as exc:
                if "HTTP 404" in str(exc) or "HTTP 400" in str(exc):
                    continue  # the parent product is gone: its variations are missing
                raise
            live.update({str(item.get("id")): item for item in page.items})
    return live


def _on_sale(item: dict) -> str:
    if item.get("on_sale") and item.get("sale_price"):
        return (
            f"on sale in the shop at {item['sale_price']}: WooCommerce sells at the sale price, "
            "so a new regular price would not change what buyers pay; end the sale in the shop "
            "first; not sent"
        )
    return ""


def push_changes(client: WooClient, connection, rows: list[ChangeRow]) -> list[PushResult]:
    variants = variants_of(connection, rows)
    parent = {ref: product for product, ref in variants.values()}
    live = live_items(
        client, {variants[r.sku][1]: variants[r.sku][0] for r in rows if r.sku in variants}
    )
    prices = {
        ref: price
        for ref, item in live.items()
        if (price := _decimal(item.get("price"))) is not None
    }
    results, sendable = plan(
        rows,
        {sku: refs[1] for sku, refs in variants.items()},
        prices,
        shop_url=connection.shop_url,
        refuse=lambda ref: _on_sale(live[ref]),
    )
    groups: dict[str, list[tuple[ChangeRow, str]]] = defaultdict(list)
    for row, ref in sendable:
        product = parent[ref]
        groups[
            "products" if not _is_variation(product, ref) else f"products/{product}/variations"
        ].append((row, ref))
    for path, items in groups.items():
        for chunk in chunks(items, BATCH_MAX):
            remember_sending(connection, chunk)
            written: list[tuple[str, Decimal]] = []
            _send(client, f"{path}/batch", chunk, results, written)
            remember_pushed(connection, written)  # batch by batch: a failure later keeps it
    return [results[r.change_id] for r in rows]


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(CENT) if value not in (None, "") else None
    except ArithmeticError:
        return None


def _send(client: WooClient, path: str, chunk, results: dict, written: list) -> None:
    body = {
        "update": [
            {"id": int(ref), "regular_price": f"{row.new_price.quantize(CENT)}"}
            for row, ref in chunk
        ]
    }
    try:
        data = client.post(path, body)
    except WooTransientError:
        raise
    except WooAuthError:
        raise
    except WooError as exc:
        for row, _ref in chunk:
            results[row.change_id] = PushResult(row.change_id, False, f"WooCommerce: {exc}")
        return
    answered = (data or {}).get("update") if isinstance(data, dict) else None
    answered = answered if isinstance(answered, list) else []
    for i, (row, ref) in enumerate(chunk):
        item = answered[i] if i < len(answered) and isinstance(answered[i], dict) else {}
        target = row.new_price.quantize(CENT)
        error = item.get("error")
        if error:
            message = (error.get("message") if isinstance(error, dict) else str(error)) or "refused"
            results[row.change_id] = PushResult(row.change_id, False, f"WooCommerce: {message}")
        elif str(item.get("id")) == ref and _decimal(item.get("price")) == target:
            results[row.change_id] = PushResult(row.change_id, True)
            written.append((ref, target))
        else:
            results[row.change_id] = PushResult(
                row.change_id, False, "WooCommerce did not confirm the new price"
            )
