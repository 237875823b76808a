"""The base of every portal page: a logged-in member of the current tenant whose role grants
the page's permission (pages of every app use `tenant_view`)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from tenants.roles import Perm, has_perm

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def tenant_view(perm: str = Perm.VIEW, *, post: str | None = None):
    """Login required, a current tenant required, and the role must grant `perm`; a POST
    (or any other write method) must also grant `post` where given: one declarative check per
    view, as the API's permission classes do."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.tenant is None:
                return render(request, "portal/no_tenant.html", status=403)
            role = request.membership.role
            needed = [perm] + ([post] if post and request.method not in SAFE_METHODS else [])
            for each in needed:
                if not has_perm(role, each):
                    raise PermissionDenied(f"your role may not do this (needs {each})")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
