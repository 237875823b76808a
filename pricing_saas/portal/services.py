"""Team management, every write: signup, members and roles, invitations, API keys.

Keyword-only arguments, one transaction each; the rules refuse with ServiceError
(pricing_saas.web.errors), which the API and the pages turn into one error shape.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from pricing_saas.web.errors import NotFoundError, PermissionDeniedError, ServiceError, require_perm
from tenants import audit
from tenants.context import actor_context, rls_lookup, tenant_context
from tenants.models import ApiKey, Invitation, Membership, Tenant, User
from tenants.roles import Perm, Role
from tenants.services import create_tenant, secret_digest

_TOKEN = re.compile(r"^([0-9a-f]{16})\.([A-Za-z0-9_-]{20,100})$")


@transaction.atomic
def signup(*, email: str, password: str, company: str, full_name: str = "") -> tuple[User, Tenant]:
    email = User.objects.normalize_email(email).lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ServiceError(
            "an account with this e-mail already exists", code="exists", attr="email"
        )
    user = User.objects.create_user(email=email, password=password, full_name=full_name)
    tenant = create_tenant(name=company, owner=user)
    return user, tenant


def _lock_owners(tenant_id: int) -> set[int]:
    """Lock the tenant's owner memberships (in id order, so that two requests never wait on
    each other crosswise) and return their ids.

    Every change that could take away an owner takes these locks before counting, so two owners
    demoting or removing each other at once are serialised: the second sees the first's change
    (a row no longer an owner drops out of the locked set) and is refused as the last owner.
    Locking only the target row let both counts see two owners and both commit.
    """
    owners = Membership.objects.select_for_update().filter(tenant_id=tenant_id, role=Role.OWNER)
    return set(owners.order_by("pk").values_list("pk", flat=True))


@transaction.atomic
def change_role(*, actor_role: str, membership: Membership, role: str) -> Membership:
    require_perm(actor_role, Perm.MANAGE_MEMBERS)
    if role not in Role.values:
        raise ServiceError(f"unknown role {role!r}", code="invalid_choice", attr="role")
    owners = _lock_owners(membership.tenant_id)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and role != Role.OWNER and owners <= {locked.pk}:
        raise ServiceError("a tenant must keep at least one owner", code="last_owner", attr="role")
    before = locked.role
    locked.role = role
    locked.save(update_fields=["role"])
    audit.record(
        "member.role",
        target=locked,
        summary=f"{locked.user.email}: {before} -> {role}",
        before={"role": before},
        after={"role": role},
    )
    return locked


@transaction.atomic
def remove_member(*, actor_role: str, membership: Membership) -> None:
    require_perm(actor_role, Perm.MANAGE_MEMBERS)
    owners = _lock_owners(membership.tenant_id)
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.role == Role.OWNER and owners <= {locked.pk}:
        raise ServiceError("a tenant must keep at least one owner", code="last_owner")
    audit.record(
        "member.remove",
        target=locked,
        summary=f"{locked.user.email} removed",
        before={"email": locked.user.email, "role": locked.role},
    )
    locked.delete()


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # `<lookup_id>.<secret>`, shown once (in the e-mail)


@transaction.atomic
def invite_member(
    *, tenant: Tenant, actor: User | None, actor_role: str, email: str, role: str
) -> IssuedInvitation:
    require_perm(actor_role, Perm.MANAGE_MEMBERS)
    if role not in Role.values:
        raise ServiceError(f"unknown role {role!r}", code="invalid_choice", attr="role")
    email = User.objects.normalize_email(email).lower()
    if Membership.objects.filter(user__email__iexact=email).exists():
        raise ServiceError("this person is already a member", code="already_member", attr="email")
    lookup_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        lookup_id=lookup_id,
        token_hash=secret_digest(secret),
        invited_by=actor,
        expires_at=timezone.now() + settings.TENANT_INVITATION_TTL,
    )
    audit.record(
        "invitation.create",
        target=invitation,
        summary=f"invited {email} as {role}",
        after={"email": email, "role": role},
    )
    return IssuedInvitation(invitation=invitation, token=f"{lookup_id}.{secret}")


def find_invitation(token: str) -> Invitation:
    """The open invitation a token names, or NotFoundError (same answer for every failure)."""
    match = _TOKEN.match(token or "")
    if not match:
        raise NotFoundError("this invitation link is not valid", code="invalid_invitation")
    lookup_id, secret = match.groups()
    with rls_lookup(invitation=lookup_id):
        candidates = list(Invitation.unscoped.select_related("tenant").filter(lookup_id=lookup_id))
    # lookup_id is unique per tenant only (docs/citus.md): the invitation is the row whose
    # token matches.
    digest = secret_digest(secret)
    invitation = next((i for i in candidates if hmac.compare_digest(i.token_hash, digest)), None)
    if invitation is None or not invitation.is_open:
        raise NotFoundError(
            "this invitation link is not valid or has expired", code="invalid_invitation"
        )
    return invitation


@transaction.atomic
def accept_invitation(*, token: str, user: User) -> Membership:
    invitation = find_invitation(token)
    if invitation.email.lower() != user.email.lower():
        raise PermissionDeniedError(
            "this invitation was sent to another e-mail address", code="wrong_recipient"
        )
    with tenant_context(invitation.tenant):
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if not invitation.is_open:
            raise NotFoundError("this invitation has already been used", code="invalid_invitation")
        membership, _ = Membership.objects.get_or_create(
            tenant=invitation.tenant, user=user, defaults={"role": invitation.role}
        )
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        with actor_context(user.pk, user.email):
            audit.record(
                "member.join",
                target=membership,
                summary=f"{user.email} joined as {membership.role}",
                after={"email": user.email, "role": membership.role},
            )
    return membership


@transaction.atomic
def signup_from_invitation(
    *, token: str, password: str, full_name: str = ""
) -> tuple[User, Membership]:
    """A new person accepts an invitation: the account is created for the invited address."""
    invitation = find_invitation(token)
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise ServiceError(
            "an account with this e-mail exists: log in first, then open the link again",
            code="exists",
            attr="email",
        )
    user = User.objects.create_user(email=invitation.email, password=password, full_name=full_name)
    return user, accept_invitation(token=token, user=user)


@transaction.atomic
def revoke_invitation(*, actor_role: str, invitation: Invitation) -> None:
    require_perm(actor_role, Perm.MANAGE_MEMBERS)
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit.record(
        "invitation.revoke", target=invitation, summary=f"invitation of {invitation.email} revoked"
    )


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    key: str  # `<prefix>.<secret>`, shown once


@transaction.atomic
def create_api_key(
    *, tenant: Tenant, actor: User | None, actor_role: str, name: str, role: str
) -> IssuedApiKey:
    require_perm(actor_role, Perm.MANAGE_KEYS)
    if role not in Role.values:
        raise ServiceError(f"unknown role {role!r}", code="invalid_choice", attr="role")
    if role == Role.OWNER:
        raise ServiceError(
            "API keys cannot hold the owner role; use admin or lower",
            code="invalid_choice",
            attr="role",
        )
    if not name or len(name) > 100:
        raise ServiceError("name must be 1-100 characters", code="invalid", attr="name")
    for _ in range(5):
        prefix = "pk_" + secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        # The database holds a prefix unique per tenant (docs/citus.md); one that another
        # tenant holds is drawn again too, so that a prefix names one key in logs and audits.
        with rls_lookup(key_prefix=prefix):
            if ApiKey.unscoped.filter(prefix=prefix).exists():
                continue
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    tenant=tenant,
                    name=name,
                    prefix=prefix,
                    secret_hash=secret_digest(secret),
                    role=role,
                    created_by=actor,
                )
                audit.record(
                    "api_key.create",
                    target=api_key,
                    summary=f"key {prefix} ({name}) as {role}",
                    after={"name": name, "prefix": prefix, "role": role},
                )
            return IssuedApiKey(api_key=api_key, key=f"{prefix}.{secret}")
        except IntegrityError:  # a prefix collision: 48 random bits, practically never
            continue
    raise ServiceError("could not allocate a key prefix, try again", code="conflict")


@transaction.atomic
def revoke_api_key(*, actor_role: str, api_key: ApiKey) -> ApiKey:
    require_perm(actor_role, Perm.MANAGE_KEYS)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit.record(
            "api_key.revoke",
            target=api_key,
            summary=f"key {api_key.prefix} ({api_key.name}) revoked",
            before={"active": True},
            after={"active": False},
        )
    return api_key
