"""Roles checked per action: each view names the permission an action needs."""

from __future__ import annotations

from rest_framework import permissions

from tenants.roles import Perm, has_perm


class HasTenantRole(permissions.BasePermission):
    """Reads need `view`; writes need the view's `write_perm`, or per action `action_perms`."""

    message = "your role may not do this"

    def has_permission(self, request, view) -> bool:
        context = getattr(request, "auth_context", None)
        if context is None:
            return False
        perm = required_perm(request, view)
        if not has_perm(context.role, perm):
            self.message = f"your role ({context.role}) may not do this (needs {perm})"
            return False
        return True


def required_perm(request, view) -> str:
    action = getattr(view, "action", None)
    per_action = getattr(view, "action_perms", {})
    if action in per_action:
        return per_action[action]
    if request.method in permissions.SAFE_METHODS:
        return Perm.VIEW
    return getattr(view, "write_perm", Perm.MANAGE_SETTINGS)
