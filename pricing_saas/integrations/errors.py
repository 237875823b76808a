"""Errors every connector raises, whatever the platform, so that syncs, publishing and
test-connection treat a refused credential, a passing failure and a refusal the same way."""

from __future__ import annotations


class ConnectorError(Exception):
    """The shop refused the request (retrying will not fix it)."""


class ConnectorTransientError(ConnectorError):
    """Network, 5xx or rate limit still failing after the retries: try again later."""


class ConnectorAuthError(ConnectorError):
    """401/403: the credentials are wrong, revoked, or lack a permission."""
