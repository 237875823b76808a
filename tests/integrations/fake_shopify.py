"""A fake Shopify Admin GraphQL API, faithful to what the connector relies on (a werkzeug
handler served by pytest-httpserver on 127.0.0.1).

- Authentication: `X-Shopify-Access-Token` must be the shop's token, else 401 (revoke it with
  `revoke()`, also after N calls with `revoke_after`).
- The cost limit: a leaky bucket per shop (`maximum` points, `restore_rate` per second, the
  Standard plan's 100/s by default). The requested cost is computed as Shopify documents it
  (a connection 2 + first x node, an object 1, scalars 0; a mutation 10); a request whose
  requested cost the bucket cannot pay gets HTTP 200 with an error of code THROTTLED and no
  data; otherwise the requested cost is taken and the difference to the actual cost (what the
  answer really holds) refunded. Every answer carries `extensions.cost`.
- Operations, recognised by name: Shop, Variants (productVariants with cursor pagination and
  `updated_at:>'...'`), VariantPrices (nodes), VariantsBulkUpdate (productVariantsBulkUpdate
  with userErrors for unknown variants and bad prices, allowPartialUpdates), Orders (cursor
  pagination sorted by updated_at, `updated_at:>='...'`).
- Faults, queued with `fail_next(kind, n)`: "429" (Retry-After: 2), "500", "timeout" (sleeps
  past the client's timeout), "throttle" (a THROTTLED answer whatever the bucket).
- Time comes from `clock` (a FakeClock shared with the client, so waits cost no real time).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from werkzeug import Request, Response

from pricing_saas.integrations.shopify.client import API_VERSION

PATH = f"/admin/api/{API_VERSION}/graphql.json"


class FakeClock:
    """Simulated time for the client and the server: sleeping advances it at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)
            self.slept += max(0.0, seconds)


def gid(kind: str, n: int) -> str:
    return f"gid://shopify/{kind}/{n}"


@dataclass
class FakeShop:
    token: str = "shpat_test_token"
    name: str = "Fake Shop"
    currency: str = "USD"
    maximum: float = 2000.0
    restore_rate: float = 100.0
    clock: FakeClock = field(default_factory=FakeClock)
    products: dict[str, dict] = field(default_factory=dict)  # product gid -> product
    orders: list[dict] = field(default_factory=list)
    revoke_after: int | None = None
    calls: Counter = field(default_factory=Counter)
    throttled: int = 0
    http_429: int = 0
    writes: list[tuple[str, str]] = field(default_factory=list)  # (variant gid, price) applied
    webhooks: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (topic, url)
    bulk: dict | None = None  # the current bulk operation
    bulk_polls: int = 2
    bulk_outcome: str = "COMPLETED"
    bulk_runs: int = 0
    bulk_files: dict[str, bytes] = field(default_factory=dict)
    url: str = ""
    _available: float | None = None
    _seen: float = 0.0
    _faults: list[str] = field(default_factory=list)
    _next_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- data --------------------------------------------------------------------------------

    def add_product(self, title: str, variants: list[dict], **fields) -> str:
        pid = gid("Product", self._take_id())
        product = {
            "id": pid,
            "title": title,
            "description": fields.get("description", ""),
            "vendor": fields.get("vendor", ""),
            "productType": fields.get("productType", ""),
            "status": "ACTIVE",
            "updatedAt": fields.get("updatedAt", "2025-01-01T00:00:00Z"),
            "variants": [],
        }
        for v in variants:
            product["variants"].append(
                {
                    "id": gid("ProductVariant", self._take_id()),
                    "sku": v.get("sku", ""),
                    "title": v.get("title", "Default Title"),
                    "price": str(v["price"]),
                    "compareAtPrice": v.get("compareAtPrice"),
                    "inventoryQuantity": v.get("inventoryQuantity", 0),
                    "unitCost": v.get("unitCost"),
                    "updatedAt": product["updatedAt"],
                }
            )
        self.products[pid] = product
        return pid

    def variant(self, sku: str) -> dict:
        for product in self.products.values():
            for v in product["variants"]:
                if v["sku"] == sku:
                    return v
        raise KeyError(sku)

    def remove_product_of(self, sku: str) -> None:
        for pid, product in list(self.products.items()):
            if any(v["sku"] == sku for v in product["variants"]):
                del self.products[pid]

    def add_order(
        self,
        *,
        created: str,
        updated: str | None = None,
        lines,
        refunds=(),
        currency: str | None = None,
        cancelled: str | None = None,
    ) -> dict:
        """lines: (sku, quantity, unit price paid); refunds: (line index, quantity)."""
        oid = gid("Order", self._take_id())
        line_items = [
            {
                "id": gid("LineItem", self._take_id()),
                "sku": sku,
                "quantity": qty,
                "discountedUnitPriceAfterAllDiscountsSet": {
                    "shopMoney": {"amount": str(price), "currencyCode": currency or self.currency}
                },
            }
            for sku, qty, price in lines
        ]
        order = {
            "id": oid,
            "name": f"#{len(self.orders) + 1001}",
            "createdAt": created,
            "updatedAt": updated or created,
            "cancelledAt": cancelled,
            "currencyCode": currency or self.currency,
            "lineItems": line_items,
            "refunds": [
                {
                    "createdAt": updated or created,
                    "refundLineItems": {
                        "nodes": [
                            {"quantity": q, "lineItem": {"id": line_items[i]["id"]}}
                            for i, q in refund
                        ]
                    },
                }
                for refund in refunds
            ],
        }
        self.orders.append(order)
        return order

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- faults ------------------------------------------------------------------------------

    def fail_next(self, kind: str, n: int = 1) -> None:
        self._faults += [kind] * n

    def revoke(self) -> None:
        self.token = "revoked-" + self.token

    # --- the bucket --------------------------------------------------------------------------

    def _refill(self) -> float:
        now = self.clock()
        if self._available is None:
            self._available = self.maximum
        else:
            self._available = min(
                self.maximum, self._available + self.restore_rate * (now - self._seen)
            )
        self._seen = now
        return self._available

    def _cost(self, requested: float, actual: float | None) -> dict:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": self.maximum,
                "currentlyAvailable": round(self._available or 0, 3),
                "restoreRate": self.restore_rate,
            },
        }

    # --- the handler -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        with self._lock:
            return self._handle(request)

    def _handle(self, request: Request) -> Response:
        total = sum(self.calls.values())
        if self.revoke_after is not None and total >= self.revoke_after:
            self.revoke()
            self.revoke_after = None
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            return _json({"errors": "[API] Invalid API key or access token"}, 401)
        body = json.loads(request.get_data() or b"{}")
        query, variables = body.get("query", ""), body.get("variables") or {}
        match = re.search(r"\b(query|mutation)\s+(\w+)", query)
        operation = match.group(2) if match else ""
        self.calls[operation] += 1
        if self._faults:
            fault = self._faults.pop(0)
            if fault == "429":
                self.http_429 += 1
                return Response("Too Many Requests", 429, headers={"Retry-After": "2"})
            if fault == "500":
                return Response("Internal Server Error", 500)
            if fault == "timeout":
                time.sleep(1.5)
                return Response("late", 504)
            if fault == "throttle":
                self._refill()
                self.throttled += 1
                return _throttled(self._cost(1000, None))
        requested = self._requested(operation, variables)
        if requested > 1000:
            return _json(
                {
                    "errors": [
                        {
                            "message": f"Query cost is {requested}, which exceeds the single query max cost limit (1000)."
                        }
                    ]
                }
            )
        if self._refill() < requested:
            self.throttled += 1
            return _throttled(self._cost(requested, None))
        self._available -= requested
        data, actual = getattr(self, f"_op_{operation}", self._op_unknown)(variables)
        self._available = min(self.maximum, self._available + requested - actual)
        return _json({"data": data, "extensions": {"cost": self._cost(requested, actual)}})

    @staticmethod
    def _requested(operation: str, variables: dict) -> float:
        first = int(variables.get("first") or 1)
        if operation == "Variants":
            return 2 + first * 4
        if operation == "Orders":
            return 2 + first * (1 + (2 + 25 * 3) + 2 * (1 + 2 + 25 * 2))
        if operation == "OrderRest":
            return 1 + (2 + 100 * 3) + 10 * (1 + 2 + 25 * 2)
        if operation == "VariantPrices":
            return 1 + 2 * len(variables.get("ids") or [])
        if operation == "VariantsBulkUpdate":
            return 10
        return 1

    def _op_Webhooks(self, variables):
        nodes = [
            {
                "id": hook_id,
                "topic": topic,
                "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": url},
            }
            for hook_id, (topic, url) in self.webhooks.items()
        ]
        return {"webhookSubscriptions": {"nodes": nodes}}, 2 + len(nodes)

    def _op_WebhookCreate(self, variables):
        topic = variables.get("topic")
        url = (variables.get("subscription") or {}).get("callbackUrl") or ""
        errors = []
        if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            errors.append(
                {"field": ["webhookSubscription", "callbackUrl"], "message": "Address is invalid"}
            )
        elif (topic, url) in self.webhooks.values():
            errors.append(
                {
                    "field": ["webhookSubscription", "callbackUrl"],
                    "message": "Address for this topic has already been taken",
                }
            )
        hook = None
        if not errors:
            hook_id = gid("WebhookSubscription", self._take_id())
            self.webhooks[hook_id] = (topic, url)
            hook = {"id": hook_id}
        return {
            "webhookSubscriptionCreate": {"webhookSubscription": hook, "userErrors": errors}
        }, 10

    def _op_Counts(self, variables):
        variants = sum(len(p["variants"]) for p in self.products.values())
        return {
            "productVariantsCount": {"count": variants, "precision": "EXACT"},
            "ordersCount": {"count": min(len(self.orders), 10_000), "precision": "EXACT"},
        }, 3

    def _op_BulkRun(self, variables):
        """bulkOperationRunQuery: one at a time; the result is ready after `bulk_polls` polls."""
        if self.bulk and self.bulk["status"] in ("CREATED", "RUNNING"):
            return {
                "bulkOperationRunQuery": {
                    "bulkOperation": None,
                    "userErrors": [
                        {
                            "field": None,
                            "message": "A bulk query operation for this app and shop is "
                            "already in progress",
                        }
                    ],
                }
            }, 10
        query = variables.get("query") or ""
        kind = "orders" if "orders" in query else "variants"
        op_id = gid("BulkOperation", self._take_id())
        self.bulk = {"id": op_id, "status": "RUNNING", "kind": kind, "polls": self.bulk_polls}
        self.bulk_runs += 1
        return {
            "bulkOperationRunQuery": {
                "bulkOperation": {"id": op_id, "status": "CREATED"},
                "userErrors": [],
            }
        }, 10

    def _op_BulkStatus(self, variables):
        op = self.bulk
        if op is None:
            return {"currentBulkOperation": None}, 1
        if op["status"] == "RUNNING":
            op["polls"] -= 1
            if op["polls"] <= 0:
                op["status"] = self.bulk_outcome
                self.bulk_files[op["id"].rsplit("/", 1)[1]] = self._bulk_jsonl(op["kind"])
        url = None
        if op["status"] == "COMPLETED":
            url = f"{self.url}/bulk/{op['id'].rsplit('/', 1)[1]}.jsonl"
        return {
            "currentBulkOperation": {
                "id": op["id"],
                "status": op["status"],
                "errorCode": "INTERNAL_SERVER_ERROR" if op["status"] == "FAILED" else None,
                "objectCount": "0",
                "url": url,
            }
        }, 1

    def _bulk_jsonl(self, kind: str) -> bytes:
        """The result file: one line per node, nested connections' nodes as lines of their own
        naming `__parentId`, in no particular order (children first here, as Shopify allows)."""
        lines = []
        if kind == "variants":
            nodes, _ = self._op_Variants({"first": 10**9})
            lines = list(nodes["productVariants"]["nodes"])
        else:
            for o in self.orders:
                for line in o["lineItems"]:
                    lines.append({**line, "__parentId": o["id"]})
            for o in self.orders:
                lines.append(
                    {
                        **{
                            k: o[k]
                            for k in (
                                "id",
                                "name",
                                "createdAt",
                                "updatedAt",
                                "cancelledAt",
                                "currencyCode",
                            )
                        },
                        "refunds": [{"id": gid("Refund", i)} for i, _ in enumerate(o["refunds"])],
                    }
                )
        return "\n".join(json.dumps(line) for line in lines).encode() + b"\n"

    def serve_bulk(self, request: Request) -> Response:
        name = request.path.rsplit("/", 1)[1].removesuffix(".jsonl")
        body = self.bulk_files.get(name)
        if body is None:
            return Response("not found", 404)
        return Response(body, 200, content_type="application/jsonl")

    def _op_unknown(self, variables):
        return None, 1

    def _op_Shop(self, variables):
        return {
            "shop": {
                "name": self.name,
                "currencyCode": self.currency,
                "myshopifyDomain": "fake-shop.myshopify.com",
            }
        }, 1

    def _page(self, items: list, variables: dict, key) -> tuple[list, dict]:
        items = sorted(items, key=key)
        start = 0
        if variables.get("after"):
            start = int(variables["after"].removeprefix("cursor:"))
        first = int(variables["first"])
        page = items[start : start + first]
        end = start + len(page)
        return page, {
            "hasNextPage": end < len(items),
            "endCursor": f"cursor:{end}" if page else None,
        }

    def _op_Variants(self, variables):
        since = _since(variables.get("query"))
        rows = []
        for product in self.products.values():
            for v in product["variants"]:
                if since and v["updatedAt"] <= since:
                    continue
                rows.append((product, v))
        page, info = self._page(rows, variables, key=lambda r: int(r[1]["id"].rsplit("/", 1)[1]))
        nodes = []
        for product, v in page:
            nodes.append(
                {
                    "id": v["id"],
                    "sku": v["sku"],
                    "title": v["title"],
                    "price": v["price"],
                    "compareAtPrice": v["compareAtPrice"],
                    "inventoryQuantity": v["inventoryQuantity"],
                    "updatedAt": v["updatedAt"],
                    "inventoryItem": {
                        "unitCost": None
                        if v["unitCost"] is None
                        else {"amount": str(v["unitCost"]), "currencyCode": self.currency}
                    },
                    "product": {
                        k: product[k]
                        for k in (
                            "id",
                            "title",
                            "description",
                            "vendor",
                            "productType",
                            "status",
                            "updatedAt",
                        )
                    },
                }
            )
        return {"productVariants": {"pageInfo": info, "nodes": nodes}}, 2 + len(nodes) * 4

    def _op_VariantPrices(self, variables):
        by_id = {v["id"]: (v, p["id"]) for p in self.products.values() for v in p["variants"]}
        nodes = []
        for ref in variables["ids"]:
            found = by_id.get(ref)
            nodes.append(
                None
                if found is None
                else {"id": ref, "price": found[0]["price"], "product": {"id": found[1]}}
            )
        return {"nodes": nodes}, 1 + 2 * sum(n is not None for n in nodes)

    def _op_VariantsBulkUpdate(self, variables):
        product = self.products.get(variables["productId"])
        if product is None:
            return {
                "productVariantsBulkUpdate": {
                    "productVariants": None,
                    "userErrors": [
                        {
                            "field": ["productId"],
                            "message": "Product does not exist",
                            "code": "PRODUCT_DOES_NOT_EXIST",
                        }
                    ],
                }
            }, 10
        variants = {v["id"]: v for v in product["variants"]}
        errors, updated = [], []
        for i, change in enumerate(variables["variants"]):
            variant = variants.get(change.get("id"))
            if variant is None:
                errors.append(
                    {
                        "field": ["variants", str(i), "id"],
                        "message": "Product variant does not exist",
                        "code": "PRODUCT_VARIANT_DOES_NOT_EXIST",
                    }
                )
                continue
            try:
                price = Decimal(str(change.get("price")))
            except InvalidOperation:
                price = Decimal(-1)
            if price < 0:
                errors.append(
                    {
                        "field": ["variants", str(i), "price"],
                        "message": "Price must be greater than or equal to 0",
                        "code": "INVALID",
                    }
                )
                continue
            updated.append((variant, f"{price:.2f}"))
        for variant, price in updated:
            variant["price"] = price
            self.writes.append((variant["id"], price))
        return {
            "productVariantsBulkUpdate": {
                "productVariants": [{"id": v["id"], "price": p} for v, p in updated],
                "userErrors": errors,
            }
        }, 10

    def _op_Orders(self, variables):
        since = _since(variables.get("query"), inclusive=True)
        rows = [o for o in self.orders if not since or o["updatedAt"] >= since]
        page, info = self._page(rows, variables, key=lambda o: (o["updatedAt"], o["id"]))
        nodes, actual = [], 2
        for o in page:
            nodes.append(
                {
                    **{
                        k: o[k]
                        for k in (
                            "id",
                            "name",
                            "createdAt",
                            "updatedAt",
                            "cancelledAt",
                            "currencyCode",
                        )
                    },
                    "lineItems": _lines(o["lineItems"], 25, None),
                    "refunds": o["refunds"][:2],
                }
            )
            actual += (
                1
                + 2
                + 3 * min(25, len(o["lineItems"]))
                + sum(3 + 2 * len(r["refundLineItems"]["nodes"]) for r in o["refunds"][:2])
            )
        return {"orders": {"pageInfo": info, "nodes": nodes}}, actual

    def _op_OrderRest(self, variables):
        order = next((o for o in self.orders if o["id"] == variables.get("id")), None)
        if order is None:
            return {"order": None}, 1
        lines = _lines(order["lineItems"], 100, variables.get("after"))
        refunds = [
            {
                **r,
                "refundLineItems": {
                    "pageInfo": {"hasNextPage": len(r["refundLineItems"]["nodes"]) > 25},
                    "nodes": r["refundLineItems"]["nodes"][:25],
                },
            }
            for r in order["refunds"][:10]
        ]
        actual = (
            1
            + 2
            + 3 * len(lines["nodes"])
            + sum(3 + 2 * len(r["refundLineItems"]["nodes"]) for r in refunds)
        )
        return {"order": {"lineItems": lines, "refunds": refunds}}, actual


def _lines(items: list, first: int, after: str | None) -> dict:
    """A lineItems connection: `first` lines after the cursor `line:N`."""
    start = int(after.removeprefix("line:")) if after else 0
    page = items[start : start + first]
    end = start + len(page)
    return {
        "pageInfo": {"hasNextPage": end < len(items), "endCursor": f"line:{end}"},
        "nodes": page,
    }


def _since(query: str | None, inclusive: bool = False) -> str | None:
    if not query:
        return None
    match = re.search(r"updated_at:>=?'([^']+)'", query)
    return match.group(1) if match else None


def _json(body, status: int = 200) -> Response:
    return Response(json.dumps(body), status, content_type="application/json")


def _throttled(cost: dict) -> Response:
    return _json(
        {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
            ],
            "extensions": {"cost": cost},
        }
    )
