"""The base of every portal page: a logged-in member of the current tenant whose role grants
the page's permission (pages of every app use `tenant_view`)."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from tenants.roles import Perm, has_perm


def tenant_view(perm: str = Perm.VIEW):
    """Login required, a current tenant required, and the role must grant `perm`."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.tenant is None:
                return render(request, "portal/no_tenant.html", status=403)
            if not has_perm(request.membership.role, perm):
                raise PermissionDenied(f"your role may not do this (needs {perm})")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
