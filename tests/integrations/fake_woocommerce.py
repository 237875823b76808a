"""A fake WooCommerce REST API v3, faithful to what the connector relies on (a werkzeug handler
served by pytest-httpserver on 127.0.0.1).

- Authentication: HTTP Basic with the consumer key and secret, else 401 with WooCommerce's
  error body (`revoke()`, also after N calls with `revoke_after`).
- Listings (`products`, `products/{id}/variations`, `orders`, `orders/{id}/refunds`): `page`,
  `per_page` (at most 100, else 400 `rest_invalid_param`), `orderby` (id, date, modified),
  `order`, `modified_after` (strictly after; GMT with `dates_are_gmt`), `include`; the answer
  carries `X-WP-Total` and `X-WP-TotalPages`. A product or variation that does not exist: 404
  `woocommerce_rest_product_invalid_id`.
- Batches (`products/batch`, `products/{id}/variations/batch`): at most 100 items (else 413);
  each `update` item answered in order with the saved item or `{"id", "error"}`; the active
  `price` is the sale price while on sale, else the regular price.
- Modification times advance one second per change (`tick`), or stay put with `freeze`.
- Faults, queued with `fail_next(kind, n)`: "429" (Retry-After: 2), "500", "timeout" (sleeps
  past the client's timeout), "apply-then-500" (a batch is applied, then the answer is a 500:
  a connection lost half-way).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from werkzeug import Request, Response

PREFIX = "/wp-json/wc/v3/"
PATH = re.compile(r"^/wp-json/wc/v3/.*$")
BASE_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def signed(payload: dict, secret: str) -> tuple[bytes, str]:
    raw = json.dumps(payload).encode()
    return raw, base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


@dataclass
class FakeWoo:
    key: str = "ck_" + "a" * 40
    secret: str = "cs_" + "b" * 40
    currency: str = "USD"
    products: dict[int, dict] = field(default_factory=dict)
    variations: dict[int, dict[int, dict]] = field(default_factory=dict)  # parent -> id -> item
    orders: dict[int, dict] = field(default_factory=dict)
    refunds: dict[int, list[dict]] = field(default_factory=dict)
    revoke_after: int | None = None
    frozen: bool = False
    calls: Counter = field(default_factory=Counter)
    http_429: int = 0
    writes: list[tuple[int, str]] = field(default_factory=list)  # (id, regular price) applied
    webhooks: dict[int, dict] = field(default_factory=dict)
    refuse: dict[int, str] = field(default_factory=dict)  # id -> the error a batch answers
    on_list: object = None  # called with (path, page) before a listing is answered
    _seconds: int = 0
    _faults: list[str] = field(default_factory=list)
    _next_id: int = 100
    _lock: threading.Lock = field(default_factory=threading.RLock)

    # --- time and ids --------------------------------------------------------------------

    def tick(self) -> str:
        if not self.frozen:
            self._seconds += 1
        return (BASE_TIME + dt.timedelta(seconds=self._seconds)).strftime("%Y-%m-%dT%H:%M:%S")

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- data ----------------------------------------------------------------------------

    def add_product(self, name: str, *, sku: str = "", price: str = "1.00", **fields) -> dict:
        pid = self._take_id()
        product = {
            "id": pid,
            "name": name,
            "type": fields.pop("type", "simple"),
            "status": fields.pop("status", "publish"),
            "sku": sku,
            "description": fields.pop("description", ""),
            "short_description": "",
            "regular_price": str(price),
            "sale_price": fields.pop("sale_price", ""),
            "price": str(price),
            "on_sale": False,
            "manage_stock": "stock_quantity" in fields,
            "stock_quantity": fields.pop("stock_quantity", None),
            "categories": [{"id": 1, "name": c} for c in fields.pop("categories", [])],
            "brands": [{"id": 1, "name": b} for b in fields.pop("brands", [])],
            "variations": [],
            "date_modified_gmt": self.tick(),
            **fields,
        }
        self._price(product)
        self.products[pid] = product
        return product

    def add_variation(self, parent: dict, *, sku: str, price: str, option: str, **fields) -> dict:
        vid = self._take_id()
        variation = {
            "id": vid,
            "sku": sku,
            "status": "publish",
            "regular_price": str(price),
            "sale_price": fields.pop("sale_price", ""),
            "price": str(price),
            "on_sale": False,
            "manage_stock": False,
            "stock_quantity": None,
            "attributes": [{"name": "Size", "option": option}],
            "date_modified_gmt": self.tick(),
            **fields,
        }
        self._price(variation)
        parent["type"] = "variable"
        parent["variations"].append(vid)
        self.variations.setdefault(parent["id"], {})[vid] = variation
        return variation

    @staticmethod
    def _price(item: dict) -> None:
        item["on_sale"] = bool(item.get("sale_price"))
        item["price"] = item["sale_price"] if item["on_sale"] else item["regular_price"]

    def set_price(self, item: dict, regular: str) -> None:
        """A person changes a price in the WooCommerce admin."""
        item["regular_price"] = regular
        self._price(item)
        item["date_modified_gmt"] = self.tick()

    def by_sku(self, sku: str) -> dict:
        for product in self.products.values():
            if product["sku"] == sku:
                return product
        for items in self.variations.values():
            for item in items.values():
                if item["sku"] == sku:
                    return item
        raise KeyError(sku)

    def add_order(
        self, *, lines, status="completed", currency=None, created=None, refunds=()
    ) -> dict:
        """lines: (sku, quantity, line total paid); refunds: (line index, quantity)."""
        oid = self._take_id()
        when = created or self.tick()
        items = []
        for sku, quantity, total in lines:
            try:
                product = self.by_sku(sku) if sku else {}
            except KeyError:  # a SKU the shop has since deleted
                product = {}
            items.append(
                {
                    "id": self._take_id(),
                    "product_id": product.get("id", 0),
                    "variation_id": 0,
                    "sku": sku,
                    "quantity": quantity,
                    "subtotal": str(total),
                    "total": str(total),
                }
            )
        order = {
            "id": oid,
            "number": str(oid),
            "status": status,
            "currency": currency or self.currency,
            "date_created_gmt": when,
            "date_modified_gmt": self.tick(),
            "line_items": items,
            "refunds": [],
        }
        self.orders[oid] = order
        for index, quantity in refunds:
            self.refund(order, index, quantity)
        return order

    def refund(self, order: dict, index: int, quantity: int) -> None:
        line = order["line_items"][index]
        rid = self._take_id()
        self.refunds.setdefault(order["id"], []).append(
            {
                "id": rid,
                "line_items": [
                    {
                        "id": self._take_id(),
                        "product_id": line["product_id"],
                        "variation_id": 0,
                        "quantity": -quantity,
                        "meta_data": [{"key": "_refunded_item_id", "value": str(line["id"])}],
                    }
                ],
            }
        )
        order["refunds"].append({"id": rid, "total": "-1.00"})
        order["date_modified_gmt"] = self.tick()

    # --- faults --------------------------------------------------------------------------

    def fail_next(self, kind: str, n: int = 1) -> None:
        self._faults += [kind] * n

    def revoke(self) -> None:
        self.secret = "cs_revoked"

    # --- the server ----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        with self._lock:
            return self._handle(request)

    def _handle(self, request: Request) -> Response:
        path = request.path[len(PREFIX) :].strip("/")
        shape = re.sub(r"/\d+", "/{id}", path)
        self.calls[f"{request.method} {shape}"] += 1
        if self.revoke_after is not None:
            self.revoke_after -= 1
            if self.revoke_after < 0:
                self.revoke()
        auth = request.authorization
        if auth is None or auth.username != self.key or auth.password != self.secret:
            return _error("woocommerce_rest_authentication_error", "Invalid credentials.", 401)
        fault = self._faults.pop(0) if self._faults else ""
        if fault == "apply-then-500" and not path.endswith("batch"):
            self._faults.insert(0, fault)  # waits for the next batch
            fault = ""
        if fault == "429":
            self.http_429 += 1
            return Response("", status=429, headers={"Retry-After": "2"})
        if fault == "500":
            return _error("internal_server_error", "There has been a critical error.", 500)
        if fault == "timeout":
            time.sleep(0.8)
        if request.method in ("POST", "PUT") and (m := re.fullmatch(r"webhooks/(\d+)", path)):
            hook = self.webhooks.get(int(m[1]))
            if hook is None:
                return _error("woocommerce_rest_webhook_invalid_id", "Invalid ID.", 404)
            hook.update({k: v for k, v in (request.get_json(silent=True) or {}).items()})
            return _json({k: v for k, v in hook.items() if k != "secret"})
        if request.method == "POST" and path == "webhooks":
            body = request.get_json(silent=True) or {}
            if not str(body.get("delivery_url", "")).startswith("http"):
                return _error("rest_invalid_param", "Invalid parameter(s): delivery_url", 400)
            hook_id = self._take_id()
            self.webhooks[hook_id] = {
                "id": hook_id,
                "topic": body.get("topic"),
                "delivery_url": body.get("delivery_url"),
                "secret": body.get("secret", ""),
                "status": body.get("status", "active"),
            }
            return _json({k: v for k, v in self.webhooks[hook_id].items() if k != "secret"}, 201)
        if request.method == "POST" and path.endswith("batch"):
            answer = self._batch(path, request.get_json(silent=True) or {})
            if fault == "apply-then-500":
                return _error("internal_server_error", "Gateway timeout", 500)
            return answer
        if request.method != "GET":
            return _error("rest_no_route", "No route was found.", 404)
        if path == "settings/general/woocommerce_currency":
            return _json({"id": "woocommerce_currency", "value": self.currency})
        if path == "products":
            return self._list(request, path, list(self.products.values()))
        if m := re.fullmatch(r"products/(\d+)/variations", path):
            if int(m[1]) not in self.products:
                return _error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
            return self._list(request, path, list(self.variations.get(int(m[1]), {}).values()))
        if path == "orders":
            return self._list(request, path, list(self.orders.values()))
        if path == "webhooks":  # the secret only in the edit context, as WooCommerce answers
            edit = request.args.get("context") == "edit"
            hooks = [
                {k: v for k, v in h.items() if edit or k != "secret"}
                for h in self.webhooks.values()
            ]
            return self._list(request, path, hooks)
        if m := re.fullmatch(r"orders/(\d+)/refunds", path):
            return self._list(request, path, list(self.refunds.get(int(m[1]), [])))
        return _error("rest_no_route", "No route was found matching the URL.", 404)

    def _list(self, request: Request, path: str, items: list[dict]) -> Response:
        args = request.args
        try:
            per_page = int(args.get("per_page", 10))
            page = int(args.get("page", 1))
        except ValueError:
            return _error("rest_invalid_param", "Invalid parameter(s): page", 400)
        if not 1 <= per_page <= 100:
            return _error("rest_invalid_param", "Invalid parameter(s): per_page", 400)
        if args.get("include"):
            wanted = {int(x) for x in args["include"].split(",") if x.strip().isdigit()}
            items = [i for i in items if i["id"] in wanted]
        if args.get("modified_after"):
            after = args["modified_after"]
            items = [i for i in items if i.get("date_modified_gmt", "") > after]
        key = {"modified": "date_modified_gmt", "id": "id"}.get(args.get("orderby", ""), "id")
        items = sorted(items, key=lambda i: (i.get(key) or "", i["id"]))
        if args.get("order", "desc") == "desc":
            items.reverse()
        if callable(self.on_list):
            self.on_list(path, page)
        total = len(items)
        pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        return _json(
            json.loads(json.dumps(chunk)),
            headers={"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)},
        )

    def _batch(self, path: str, body: dict) -> Response:
        updates = body.get("update") or []
        if len(updates) + len(body.get("create") or []) + len(body.get("delete") or []) > 100:
            return _error(
                "woocommerce_rest_batch_too_large",
                "Unable to accept more than 100 items for this request.",
                413,
            )
        if m := re.fullmatch(r"products/(\d+)/variations/batch", path):
            if int(m[1]) not in self.products:
                return _error("woocommerce_rest_product_invalid_id", "Invalid ID.", 404)
            pool = self.variations.get(int(m[1]), {})
        else:
            pool = self.products
        answered = []
        for update in updates:
            item = pool.get(int(update.get("id") or 0))
            if item is None:
                answered.append(
                    {
                        "id": 0,
                        "error": {
                            "code": "woocommerce_rest_product_invalid_id",
                            "message": "Invalid ID.",
                            "data": {"status": 400},
                        },
                    }
                )
                continue
            if item["id"] in self.refuse:
                answered.append(
                    {
                        "id": item["id"],
                        "error": {
                            "code": "woocommerce_rest_cannot_edit",
                            "message": self.refuse[item["id"]],
                            "data": {"status": 400},
                        },
                    }
                )
                continue
            price = update.get("regular_price")
            try:
                valid = price is not None and Decimal(price) >= 0
            except InvalidOperation:
                valid = False
            if not valid:
                answered.append(
                    {
                        "id": item["id"],
                        "error": {
                            "code": "rest_invalid_param",
                            "message": "Invalid parameter(s): regular_price",
                            "data": {"status": 400},
                        },
                    }
                )
                continue
            self.set_price(item, price)
            self.writes.append((item["id"], price))
            answered.append(json.loads(json.dumps(item)))
        return _json({"update": answered})


def _json(body, status: int = 200, headers=None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers or {}, content_type="application/json"
    )


def _error(code: str, message: str, status: int) -> Response:
    return _json({"code": code, "message": message, "data": {"status": status}}, status)
