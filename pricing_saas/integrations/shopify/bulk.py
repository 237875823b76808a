"""Shopify bulk operations: the whole catalog or order history in one query Shopify runs on
its side, where that is cheaper than cursor pages (a first or full sync of a large shop: a
year of 25,000 orders is 5,000 pages, about 71 minutes of a Standard plan's cost bucket; as a
bulk query it costs 10 points and the time Shopify takes).

`run()` starts `bulkOperationRunQuery`, polls `currentBulkOperation` until it completes,
downloads the JSONL file and rebuilds the nodes in the shape the paged queries give (an order
with its `lineItems`), so the same code ingests both. The file's lines come in no guaranteed
order: children are gathered under their parent once the file is read. Refunds come as ids
only: an order with refunds is read on by itself (`pull.complete`). Only one bulk query runs
per shop and app at a time: when Shopify refuses to start one, `run()` answers None and the
sync pages instead.
"""

from __future__ import annotations

import json
from collections import defaultdict

from . import queries
from .client import ShopifyClient, ShopifyError, ShopifyTransientError

VARIANTS_THRESHOLD = 10 * queries.VARIANTS_PAGE  # more variants than this: bulk is cheaper
ORDERS_THRESHOLD = 100 * queries.ORDERS_PAGE
POLL_S = 5.0
MAX_WAIT_S = 2 * 3600.0
MORE = "bulk"  # a page of bulk results with more to come (no cursor to resume from)


def worthwhile(client: ShopifyClient, kind: str) -> bool:
    data = client.execute(queries.COUNTS, operation="Counts", estimate=2)
    if kind == "variants":
        count = (data.get("productVariantsCount") or {}).get("count") or 0
        return count > VARIANTS_THRESHOLD
    return ((data.get("ordersCount") or {}).get("count") or 0) > ORDERS_THRESHOLD


def run(client: ShopifyClient, kind: str) -> list[dict] | None:
    query = queries.BULK_VARIANTS if kind == "variants" else queries.BULK_ORDERS
    data = client.execute(
        queries.BULK_RUN, {"query": query}, operation="BulkRun", estimate=queries.MUTATION_COST
    )
    started = data.get("bulkOperationRunQuery") or {}
    operation = started.get("bulkOperation") or {}
    if started.get("userErrors") or not operation.get("id"):
        return None  # another bulk query is running for this shop: page instead
    waited = 0.0
    while True:
        status = (
            client.execute(queries.BULK_STATUS, operation="BulkStatus", estimate=1).get(
                "currentBulkOperation"
            )
            or {}
        )
        if status.get("id") != operation["id"]:
            raise ShopifyTransientError("the bulk operation was replaced by another one")
        state = status.get("status")
        if state == "COMPLETED":
            break
        if state in ("FAILED", "CANCELED", "EXPIRED"):
            raise ShopifyError(
                f"the bulk operation ended {state.lower()}: "
                f"{status.get('errorCode') or 'no reason given'}"
            )
        if waited >= MAX_WAIT_S:
            raise ShopifyTransientError("the bulk operation did not finish in time")
        client._pause(POLL_S)
        waited += POLL_S
    return _read(client, status.get("url"), kind) if status.get("url") else []


def _read(client: ShopifyClient, url: str, kind: str) -> list[dict]:
    parents: dict[str, dict] = {}
    children: dict[str, list[dict]] = defaultdict(list)
    try:
        with client._client().stream("GET", url) as response:
            if response.status_code != 200:
                raise ShopifyTransientError(
                    f"the bulk result could not be downloaded (HTTP {response.status_code})"
                )
            for line in response.iter_lines():
                if not line.strip():
                    continue
                item = json.loads(line)
                parent = item.pop("__parentId", None)
                if parent:
                    children[parent].append(item)
                else:
                    parents[item["id"]] = item
    except (ValueError, KeyError) as exc:
        raise ShopifyError(f"the bulk result is not what was asked for ({exc!r:.100})") from None
    if kind == "orders":
        for order_id, order in parents.items():
            order["lineItems"] = {
                "nodes": children.get(order_id, []),
                "pageInfo": {"hasNextPage": False},
            }
    return list(parents.values())


def pages(nodes: list[dict], size: int):
    """The bulk result in pages of `size`, as the paged sync takes them: (nodes, MORE), and the
    last one (nodes, None)."""
    for start in range(0, max(len(nodes), 1), size):
        last = start + size >= len(nodes)
        yield nodes[start : start + size], None if last else MORE
