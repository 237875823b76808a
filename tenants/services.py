"""The tenancy core's writes and lookups: tenants, memberships, API-key authentication.

Team management (signup, roles, invitations, issuing keys) is a feature above the web layer:
pricing_saas.portal.services."""

from __future__ import annotations

import hashlib
import hmac
import re

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from .context import rls_lookup, tenant_context
from .models import ApiKey, Membership, Tenant, User
from .roles import Role


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- tenants --------- ----------------------------------------------------------------------


def unique_slug(name: str) -> str:
    base = slugify(name)[:40].strip("-") or "merchant"
    slug, n = base, 1
    while Tenant.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def create_tenant(
    *,
    name: str,
    slug: str | None = None,
    owner: User | None = None,
    default_currency: str = "USD",
    timezone_name: str = "UTC",
) -> Tenant:
    slug = slug or unique_slug(name)
    tenant = Tenant(name=name, slug=slug, default_currency=default_currency, timezone=timezone_name)
    tenant.full_clean()
    tenant.save()
    if owner is not None:
        with tenant_context(tenant):
            Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    return tenant


def delete_tenant(*, tenant: Tenant) -> None:
    """Delete a tenant and every row it owns (set-based, table by table, under its own RLS)."""
    from django.apps import apps
    from django.db import connection

    from .models import TenantOwned

    with transaction.atomic(), tenant_context(tenant), connection.cursor() as cursor:
        tables = [m._meta.db_table for m in apps.get_models() if issubclass(m, TenantOwned)]
        for table in tables:
            cursor.execute(
                f"DELETE FROM {connection.ops.quote_name(table)} WHERE tenant_id = %s", [tenant.pk]
            )
        Tenant.objects.filter(pk=tenant.pk).delete()


# --- members ---------------------------------------------------------------------------------


def memberships_of(user: User):
    """The user's memberships across tenants (the tenant switcher), via the narrow RLS lookup."""
    with rls_lookup(user_id=user.pk):
        return list(
            Membership.unscoped.filter(user=user, tenant__status=Tenant.Status.ACTIVE)
            .select_related("tenant")
            .order_by("tenant__name")
        )


def membership_for(user: User, tenant: Tenant) -> Membership | None:
    with rls_lookup(user_id=user.pk):
        return Membership.unscoped.filter(user=user, tenant=tenant).first()


# --- API keys --------------------------------------------------------------------------------


_KEY = re.compile(r"^(pk_[0-9a-f]{12})\.([A-Za-z0-9_-]{20,100})$")


def authenticate_api_key(raw: str) -> ApiKey | None:
    """The active key that `raw` names, or None. Constant-time comparison of the secret hash."""
    match = _KEY.match(raw or "")
    if not match:
        return None
    prefix, secret = match.groups()
    with rls_lookup(key_prefix=prefix):
        candidates = list(ApiKey.unscoped.select_related("tenant").filter(prefix=prefix))
    # A prefix is unique per tenant only (docs/citus.md): of the rows that carry it (one, in
    # practice), the key is the one whose secret matches.
    digest = secret_digest(secret)
    api_key = next((k for k in candidates if hmac.compare_digest(k.secret_hash, digest)), None)
    if api_key is None or api_key.revoked_at is not None or not api_key.tenant.is_active:
        return None
    return api_key


def touch_api_key(api_key: ApiKey) -> None:
    """Record use, at most once a minute per key, so reads don't turn into a write each."""
    now = timezone.now()
    if api_key.last_used_at and (now - api_key.last_used_at).total_seconds() < 60:
        return
    with tenant_context(api_key.tenant):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
