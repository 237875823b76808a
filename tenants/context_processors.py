from .roles import ROLE_PERMISSIONS


def tenant(request):
    membership = getattr(request, "membership", None)
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": membership,
        "user_memberships": getattr(request, "memberships", []),
        "perms_for_role": ROLE_PERMISSIONS.get(membership.role, frozenset())
        if membership
        else frozenset(),
    }
