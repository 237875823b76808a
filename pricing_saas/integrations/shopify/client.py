"""A Shopify Admin GraphQL client that spends the shop's cost bucket as Shopify describes it.

Shopify limits GraphQL calls by calculated query cost with a leaky bucket per app and shop
(Standard plan: 100 points restored per second). Every answer carries
`extensions.cost` = {requestedQueryCost, actualQueryCost, throttleStatus: {maximumAvailable,
currentlyAvailable, restoreRate}}. A query whose requested cost the bucket cannot pay is
answered with an error whose `extensions.code` is `THROTTLED` (and no data).

This client:
- keeps the last throttle status it saw and how long ago, and before each request waits until
  the bucket has refilled enough for the request's requested cost (learnt per operation from
  earlier answers, or the caller's estimate): a request the bucket cannot pay is never sent;
- on `THROTTLED` waits for the refill the answer says is missing, on HTTP 429 for its
  `Retry-After`, on 5xx and network errors backs off exponentially; after `max_retries`
  it raises `ShopifyTransientError`;
- raises `ShopifyAuthError` on 401/403 (a wrong or revoked token: retrying will not help) and
  `ShopifyError` for other GraphQL errors.

No Django here: the connector code above passes the base URL and the token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from ..errors import ConnectorAuthError, ConnectorError, ConnectorTransientError

API_VERSION = "2025-07"  # the one pinned Admin API version
logger = logging.getLogger(__name__)


class ShopifyError(ConnectorError):
    """The shop refused the request (a GraphQL error that retrying will not fix)."""


class ShopifyTransientError(ShopifyError, ConnectorTransientError):
    """Network, 5xx or rate limit still failing after the retries: try again later."""


class ShopifyAuthError(ShopifyError, ConnectorAuthError):
    """401/403: the access token is wrong, revoked, or lacks a scope."""


@dataclass
class Bucket:
    maximum: float = 0.0  # 0: not known yet
    available: float = 0.0
    restore_rate: float = 0.0
    seen_at: float = 0.0

    def predicted(self, now: float) -> float:
        if not self.maximum:
            return float("inf")
        return min(self.maximum, self.available + self.restore_rate * max(0.0, now - self.seen_at))

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until the bucket holds `cost` (0 when it does now or is not known)."""
        if not self.maximum or not self.restore_rate:
            return 0.0
        # one point of margin: the shop rounds what it reports, and its clock runs on
        missing = min(cost + 1.0, self.maximum) - self.predicted(now)
        return max(0.0, missing / self.restore_rate)


@dataclass
class Stats:
    calls: int = 0
    throttled: int = 0  # THROTTLED answers and 429s
    retries: int = 0
    waited_s: float = 0.0
    cost: float = 0.0  # actual cost spent


@dataclass
class ShopifyClient:
    base_url: str
    token: str
    api_version: str = API_VERSION
    timeout: float = 30.0
    max_retries: int = 6
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    transport: httpx.BaseTransport | None = None
    bucket: Bucket = field(default_factory=Bucket)
    stats: Stats = field(default_factory=Stats)
    _requested: dict[str, float] = field(default_factory=dict)
    _http: httpx.Client | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.base_url.rstrip('/')}/admin/api/{self.api_version}/graphql.json"

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout, transport=self.transport)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __repr__(self) -> str:  # never the token
        return f"<ShopifyClient {self.base_url} {self.api_version}>"

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.stats.waited_s += seconds
            self.sleep(seconds)

    def execute(
        self, query: str, variables: dict | None = None, *, operation: str = "", estimate: float = 1
    ) -> dict:
        """Run one query or mutation and return its `data`. `operation` names it for the cost
        learnt from earlier answers; `estimate` is the requested cost before any is known."""
        key = operation or query
        attempt = 0
        while True:
            cost = self._requested.get(key, estimate)
            self._pause(self.bucket.wait_for(cost, self.clock()))
            self.stats.calls += 1
            try:
                response = self._client().post(
                    self.endpoint,
                    json={"query": query, "variables": variables or {}},
                    headers={"X-Shopify-Access-Token": self.token, "Accept": "application/json"},
                )
            except httpx.TransportError as exc:  # timeouts, resets, refused connections
                attempt = self._retry_or_raise(attempt, f"network error: {type(exc).__name__}")
                continue
            if response.status_code in (401, 403):
                raise ShopifyAuthError(
                    f"the shop refused the access token (HTTP {response.status_code}): it is "
                    "wrong, revoked, or lacks a scope"
                )
            if response.status_code == 429:
                self.stats.throttled += 1
                attempt = self._retry_or_raise(attempt, "rate limited (HTTP 429)", wait=False)
                self._pause(_retry_after(response))
                continue
            if response.status_code >= 500:
                attempt = self._retry_or_raise(attempt, f"HTTP {response.status_code}")
                continue
            if response.status_code != 200:
                raise ShopifyError(f"HTTP {response.status_code} from the shop")
            try:
                body = response.json()
            except ValueError:
                attempt = self._retry_or_raise(attempt, "an answer that is not JSON")
                continue
            cost_info = (body.get("extensions") or {}).get("cost") or {}
            self._observe(cost_info)
            if cost_info.get("requestedQueryCost") is not None:
                self._requested[key] = float(cost_info["requestedQueryCost"])
            errors = body.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                self.stats.throttled += 1
                attempt = self._retry_or_raise(attempt, "THROTTLED", wait=False)
                requested = float(cost_info.get("requestedQueryCost") or cost)
                self._pause(max(self.bucket.wait_for(requested, self.clock()), 0.05))
                continue
            if errors and body.get("data") is None:
                raise ShopifyError("; ".join(str(e.get("message", e)) for e in errors)[:500])
            if cost_info.get("actualQueryCost") is not None:
                self.stats.cost += float(cost_info["actualQueryCost"])
            return body.get("data") or {}

    def _observe(self, cost_info: dict) -> None:
        status = cost_info.get("throttleStatus")
        if not status:
            return
        self.bucket = Bucket(
            maximum=float(status["maximumAvailable"]),
            available=float(status["currentlyAvailable"]),
            restore_rate=float(status["restoreRate"]),
            seen_at=self.clock(),
        )

    def _retry_or_raise(self, attempt: int, reason: str, *, wait: bool = True) -> int:
        if attempt >= self.max_retries:
            raise ShopifyTransientError(f"{reason}; gave up after {attempt + 1} tries")
        self.stats.retries += 1
        if wait:
            self._pause(min(30.0, 0.5 * 2**attempt))
        return attempt + 1


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, min(60.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0
