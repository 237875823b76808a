"""Portal side of layer 2: the tenant chosen in the session, checked against membership."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.utils import timezone

from .context import actor_context, tenant_context
from .services import memberships_of

SESSION_KEY = "tenant_id"


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        request.membership = None
        request.memberships = []
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return self.get_response(request)
        memberships = memberships_of(user)
        request.memberships = memberships
        chosen = request.session.get(SESSION_KEY)
        membership = next((m for m in memberships if m.tenant_id == chosen), None)
        if membership is None and memberships:
            membership = memberships[0]
            request.session[SESSION_KEY] = membership.tenant_id
        if membership is None:
            return self.get_response(request)
        request.tenant = membership.tenant
        request.membership = membership
        with tenant_context(membership.tenant), actor_context(user.pk, user.email):
            timezone.activate(ZoneInfo(membership.tenant.timezone))  # times in the shop's zone
            try:
                return self.get_response(request)
            finally:
                timezone.deactivate()
