"""Where the platform may connect on a tenant's say-so (a shop's API address): public
addresses only, so a tenant cannot make the platform call inside its own network (SSRF)."""

from __future__ import annotations

import ipaddress
import socket


def refuse_private(host: str, port: int | None) -> None:
    """ValueError naming the host when any address it resolves to is not a public one (or it
    does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        raise ValueError(f"host {host!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ValueError(f"{host} is a private or local address ({address})")
