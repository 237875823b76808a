"""Layer 2 of tenant isolation: the current tenant, held in a ContextVar.

Set by API authentication, by the portal middleware and by the task decorator, and always reset
afterwards (`with tenant_context(tenant): ...`). The database backend copies it, on every
statement, into the transaction-local Postgres setting that row-level security reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Tenant

_current_tenant: ContextVar[Tenant | None] = ContextVar("current_tenant", default=None)
# Narrow, named lookups that row-level security allows before a tenant is known: a user's own
# memberships (tenant switcher, login) and one API key or invitation by its public identifier.
_lookup: ContextVar[dict[str, str]] = ContextVar("rls_lookup", default={})  # noqa: B039

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class TenantNotSet(RuntimeError):
    """A tenant-owned model was queried with no tenant in the current context (fail closed)."""


def get_current_tenant() -> Tenant | None:
    return _current_tenant.get()


def require_current_tenant() -> Tenant:
    tenant = _current_tenant.get()
    if tenant is None:
        raise TenantNotSet(
            "No tenant is set in this context; wrap the code in tenant_context(tenant) "
            "or use the model's `unscoped` manager for a deliberate cross-tenant query."
        )
    return tenant


@contextmanager
def tenant_context(tenant: Tenant | None) -> Iterator[Tenant | None]:
    token = _current_tenant.set(tenant)
    try:
        yield tenant
    finally:
        _current_tenant.reset(token)


@contextmanager
def rls_lookup(**values: object) -> Iterator[None]:
    """Allow one narrow pre-tenant lookup, e.g. rls_lookup(user_id=3) or rls_lookup(key_prefix=..).

    Values must be short identifiers; they are written into the SQL of each statement.
    """
    clean: dict[str, str] = {}
    for name, value in values.items():
        text = str(value)
        if not _SAFE_VALUE.match(text):
            raise ValueError(f"unsafe lookup value for {name}")
        clean[name] = text
    token = _lookup.set({**_lookup.get(), **clean})
    try:
        yield
    finally:
        _lookup.reset(token)


def rls_settings() -> dict[str, str]:
    """The Postgres settings (app.*) that row-level security reads for this statement."""
    tenant = _current_tenant.get()
    lookup = _lookup.get()
    return {
        "app.tenant_id": str(tenant.pk) if tenant is not None else "",
        "app.user_id": lookup.get("user_id", ""),
        "app.key_prefix": lookup.get("key_prefix", ""),
        "app.invitation": lookup.get("invitation", ""),
    }


# Who is acting (for the audit log): set next to the tenant by the portal middleware, the API
# base and management commands; "system" when nothing set it (scheduler, worker).
_current_actor: ContextVar[tuple[int | None, str] | None] = ContextVar(
    "current_actor", default=None
)


def get_current_actor() -> tuple[int | None, str]:
    """(user id or None, label), e.g. (3, "ana@shop.com") or (None, "api key pk_1a2b (ERP)")."""
    return _current_actor.get() or (None, "system")


@contextmanager
def actor_context(user_id: int | None, label: str) -> Iterator[None]:
    token = _current_actor.set((user_id, label))
    try:
        yield
    finally:
        _current_actor.reset(token)
