"""API authentication: API keys (`Authorization: Api-Key <prefix>.<secret>`) and portal sessions.

Both resolve a tenant and a role, stored on the request as `request.auth_context`; the base view
sets the tenant context from it for the rest of the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from tenants.models import Tenant
from tenants.services import authenticate_api_key, membership_for, touch_api_key

SCHEMES = ("api-key", "bearer")


@dataclass(frozen=True)
class AuthContext:
    tenant: Tenant
    role: str
    api_key_id: int | None = None
    user_id: int | None = None
    actor: str = ""  # who acts, for the audit log


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.strip().partition(" ")
        if scheme.lower() not in SCHEMES:
            return None
        raw = raw.strip()
        if not raw or len(raw) > 200:
            raise exceptions.AuthenticationFailed("malformed API key", code="invalid_api_key")
        api_key = authenticate_api_key(raw)
        if api_key is None:
            raise exceptions.AuthenticationFailed(
                "invalid or revoked API key", code="invalid_api_key"
            )
        touch_api_key(api_key)
        request.auth_context = AuthContext(
            tenant=api_key.tenant,
            role=api_key.role,
            api_key_id=api_key.pk,
            actor=f"api key {api_key.prefix} ({api_key.name})",
        )
        return (AnonymousUser(), api_key)

    def authenticate_header(self, request):
        return self.keyword


class TenantSessionAuthentication(authentication.SessionAuthentication):
    """A logged-in portal user: the tenant is the one chosen in the portal (checked membership),
    or the one named by the `X-Tenant` header (a slug), which must also be theirs."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        slug = request.headers.get("X-Tenant")
        django_request = request._request
        if slug:
            tenant = Tenant.objects.filter(slug=slug[:50]).first()
            membership = membership_for(user, tenant) if tenant else None
        else:
            membership = getattr(django_request, "membership", None)
        if membership is None:
            raise exceptions.NotFound("no such tenant", code="tenant_not_found")
        request.auth_context = AuthContext(
            tenant=membership.tenant, role=membership.role, user_id=user.pk, actor=user.email
        )
        return result
