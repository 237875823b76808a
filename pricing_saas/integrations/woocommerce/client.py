"""A WooCommerce REST API v3 client (`/wp-json/wc/v3/...`).

Authentication is HTTP Basic with the consumer key and secret, which WooCommerce accepts over
HTTPS (the only scheme connections allow outside tests). WooCommerce itself does not rate-limit
its REST API, but the hosts in front of it do: this client backs off on HTTP 429 (for its
`Retry-After`), on 5xx and on network errors (exponentially), and after `max_retries` raises
`WooTransientError`. A 401/403 raises `WooAuthError` (wrong or revoked key, or a key without
the permission the call needs); other refusals `WooError` with WooCommerce's own message
(`{"code": ..., "message": ...}`).

Listings are paged by `page` and `per_page` (at most 100); the answer's `X-WP-TotalPages`
says how many pages there are. Batch endpoints take at most 100 items a call (`BATCH_MAX`).

No Django here: the connector code passes the base URL and the keys.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from ..errors import ConnectorAuthError, ConnectorError, ConnectorTransientError

API_PREFIX = "/wp-json/wc/v3"
PER_PAGE = 100
BATCH_MAX = 100  # WooCommerce refuses a batch of more than 100 items (HTTP 413)
logger = logging.getLogger(__name__)


class WooError(ConnectorError):
    """The shop refused the request (retrying will not fix it)."""


class WooTransientError(WooError, ConnectorTransientError):
    """Network, 5xx or rate limit still failing after the retries: try again later."""


class WooAuthError(WooError, ConnectorAuthError):
    """401/403: the consumer key is wrong, revoked, or lacks the permission (read/write)."""


@dataclass
class Stats:
    calls: int = 0
    throttled: int = 0  # HTTP 429 answers
    retries: int = 0
    waited_s: float = 0.0


@dataclass
class Page:
    items: list
    total_pages: int


@dataclass
class WooClient:
    base_url: str
    key: str
    secret: str
    timeout: float = 30.0
    max_retries: int = 6
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None
    stats: Stats = field(default_factory=Stats)
    _http: httpx.Client | None = None

    def __repr__(self) -> str:  # never the keys
        return f"<WooClient {self.base_url}>"

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}{API_PREFIX}/{path.lstrip('/')}"

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                timeout=self.timeout,
                transport=self.transport,
                auth=httpx.BasicAuth(self.key, self.secret),
                headers={"Accept": "application/json"},
                trust_env=False,
                follow_redirects=False,
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.stats.waited_s += seconds
            self.sleep(seconds)

    def get(self, path: str, params: dict | None = None) -> tuple[object, httpx.Headers]:
        return self._request("GET", path, params=params)

    def post(self, path: str, body: dict) -> object:
        return self._request("POST", path, json=body)[0]

    def page(self, path: str, params: dict | None = None) -> Page:
        """One page of a listing, with the number of pages the shop reports."""
        data, headers = self.get(path, {"per_page": PER_PAGE, **(params or {})})
        if not isinstance(data, list):
            raise WooError(f"{path}: the shop answered something other than a list")
        try:
            total = int(headers.get("X-WP-TotalPages", "1"))
        except ValueError:
            total = 1
        return Page(items=data, total_pages=total)

    def _request(self, method: str, path: str, **kwargs) -> tuple[object, httpx.Headers]:
        attempt = 0
        while True:
            self.stats.calls += 1
            try:
                response = self._client().request(method, self.url(path), **kwargs)
            except httpx.TransportError as exc:  # timeouts, resets, refused connections
                attempt = self._retry_or_raise(attempt, f"network error: {type(exc).__name__}")
                continue
            status = response.status_code
            if status in (401, 403):
                raise WooAuthError(
                    f"the shop refused the consumer key (HTTP {status}: {_message(response)}): "
                    "it is wrong, revoked, or lacks the read/write permission"
                )
            if status == 429:
                self.stats.throttled += 1
                attempt = self._retry_or_raise(attempt, "rate limited (HTTP 429)", wait=False)
                self._pause(_retry_after(response))
                continue
            if status >= 500:
                attempt = self._retry_or_raise(attempt, f"HTTP {status}")
                continue
            if status >= 300:
                raise WooError(f"HTTP {status}: {_message(response)}")
            try:
                return response.json(), response.headers
            except ValueError:
                raise WooError(
                    "the address does not answer as a WooCommerce REST API (is it the shop's "
                    "address, with the REST API reachable under /wp-json/?)"
                ) from None

    def _retry_or_raise(self, attempt: int, reason: str, *, wait: bool = True) -> int:
        if attempt >= self.max_retries:
            raise WooTransientError(f"{reason}; gave up after {attempt + 1} tries")
        self.stats.retries += 1
        if wait:
            self._pause(min(30.0, 0.5 * 2**attempt))
        return attempt + 1


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "not a WooCommerce answer"
    if isinstance(body, dict):
        return str(body.get("message") or body.get("code") or "refused")[:300]
    return "refused"


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, min(60.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0
