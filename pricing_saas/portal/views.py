"""The merchant portal shell: signup, tenant switcher, dashboard, team and API keys.

Views parse and format; every write goes through pricing_saas.portal.services. The tenant
comes from the portal middleware (session choice checked against membership); objects are
looked up through scoped managers, so another tenant's id is a 404.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from pricing_saas.web.errors import NotFoundError, ServiceError
from pricing_saas.web.views import tenant_view
from tenants.emails import send_invitation
from tenants.middleware import SESSION_KEY
from tenants.models import ApiKey, Invitation, Membership
from tenants.roles import Perm, has_perm, role_descriptions

from . import services
from .forms import AcceptInvitationForm, ApiKeyForm, InviteForm, RoleForm, SignupForm
from .selectors import changes


def _fail(request, exc: ServiceError) -> None:
    messages.error(request, exc.detail)


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("portal:dashboard")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user, tenant = services.signup(**form.cleaned_data)
        except ServiceError as exc:
            form.add_error(exc.attr, exc.detail)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[SESSION_KEY] = tenant.pk
            messages.success(request, f"Welcome! {tenant.name} is ready.")
            return redirect("portal:dashboard")
    return render(
        request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200
    )


@login_required
@require_POST
def switch_tenant(request):
    slug = request.POST.get("tenant", "")
    membership = next((m for m in request.memberships if m.tenant.slug == slug), None)
    if membership is None:
        raise Http404("no such tenant")
    request.session[SESSION_KEY] = membership.tenant_id
    messages.info(request, f"Now working in {membership.tenant.name}.")
    return redirect("portal:dashboard")


@tenant_view()
def dashboard(request):
    from pricing_saas.catalog.models import Product
    from pricing_saas.pricing.approvals import pending_summary, policy
    from pricing_saas.pricing.models import Publication, RepriceJob

    context = {
        "member_count": Membership.objects.count(),
        "key_count": ApiKey.objects.filter(revoked_at__isnull=True).count(),
        "product_count": Product.objects.filter(active=True).count(),
        "pending": pending_summary(),
        "last_job": RepriceJob.objects.order_by("-created_at").first(),
        "last_publication": Publication.objects.order_by("-created_at").first(),
        "policy": policy(),
    }
    return render(request, "portal/dashboard.html", context)


@tenant_view(Perm.VIEW_AUDIT)
def audit(request):
    from django.core.paginator import Paginator

    from tenants.models import AuditEvent

    action = request.GET.get("action", "")[:64]
    events = AuditEvent.objects.order_by("-created_at", "-pk")
    if action:
        events = events.filter(action__startswith=action)
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    for event in page:
        event.changes = changes(event.before, event.after)
    return render(request, "portal/audit.html", {"page": page, "action": action})


@tenant_view(Perm.VIEW_AUDIT)
def audit_export(request):
    import csv

    from django.http import HttpResponse

    from tenants.models import AuditEvent

    from .selectors import export_rows

    events = AuditEvent.objects.all()
    if request.GET.get("action"):
        events = events.filter(action__startswith=request.GET["action"][:64])
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{request.tenant.slug}.csv"'
    csv.writer(response).writerows(export_rows(events))
    return response


# --- team ------------------------------------------------------------------------------------


@tenant_view()
def team(request):
    members = Membership.objects.select_related("user").order_by("user__email")
    invitations = Invitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True)
    can_manage = has_perm(request.membership.role, Perm.MANAGE_MEMBERS)
    return render(
        request,
        "portal/team.html",
        {
            "members": members,
            "invitations": invitations.order_by("-created_at") if can_manage else [],
            "can_manage": can_manage,
            "invite_form": InviteForm(),
            "roles": RoleForm.base_fields["role"].choices,
            "role_descriptions": role_descriptions(),
        },
    )


@tenant_view(Perm.MANAGE_MEMBERS)
@require_POST
def invite(request):
    form = InviteForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect("portal:team")
    try:
        issued = services.invite_member(
            tenant=request.tenant,
            actor=request.user,
            actor_role=request.membership.role,
            **form.cleaned_data,
        )
    except ServiceError as exc:
        _fail(request, exc)
        return redirect("portal:team")
    transaction.on_commit(lambda: send_invitation(issued))
    messages.success(request, f"Invitation sent to {issued.invitation.email}.")
    return redirect("portal:team")


@tenant_view(Perm.MANAGE_MEMBERS)
@require_POST
def change_role(request, pk: int):
    membership = get_object_or_404(Membership.objects.all(), pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("unknown role")
    try:
        services.change_role(
            actor_role=request.membership.role,
            membership=membership,
            role=form.cleaned_data["role"],
        )
    except ServiceError as exc:
        _fail(request, exc)
    else:
        messages.success(request, f"{membership.user.email} is now {form.cleaned_data['role']}.")
    return redirect("portal:team")


@tenant_view(Perm.MANAGE_MEMBERS)
@require_POST
def remove_member(request, pk: int):
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=pk)
    try:
        services.remove_member(actor_role=request.membership.role, membership=membership)
    except ServiceError as exc:
        _fail(request, exc)
    else:
        messages.success(request, f"{membership.user.email} was removed.")
    return redirect("portal:team")


@tenant_view(Perm.MANAGE_MEMBERS)
@require_POST
def revoke_invitation(request, pk: int):
    invitation = get_object_or_404(Invitation.objects.all(), pk=pk)
    services.revoke_invitation(actor_role=request.membership.role, invitation=invitation)
    messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect("portal:team")


@require_http_methods(["GET", "POST"])
def accept_invitation(request, token: str):
    try:
        invitation = services.find_invitation(token)
    except NotFoundError as exc:
        return render(request, "portal/invitation_invalid.html", {"detail": exc.detail}, status=404)
    user = request.user if request.user.is_authenticated else None
    form = None if user else AcceptInvitationForm(request.POST or None)
    if request.method == "POST":
        try:
            if user is None:
                if not form.is_valid():
                    raise ServiceError("please correct the form", code="invalid")
                user, membership = services.signup_from_invitation(token=token, **form.cleaned_data)
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            else:
                membership = services.accept_invitation(token=token, user=user)
        except ServiceError as exc:
            messages.error(request, exc.detail)
        else:
            request.session[SESSION_KEY] = membership.tenant_id
            messages.success(request, f"You joined {invitation.tenant.name}.")
            return redirect("portal:dashboard")
    return render(
        request, "portal/accept_invitation.html", {"invitation": invitation, "form": form}
    )


# --- API keys --------------------------------------------------------------------------------


@tenant_view(Perm.MANAGE_KEYS)
@require_http_methods(["GET", "POST"])
def api_keys(request):
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.create_api_key(
                tenant=request.tenant,
                actor=request.user,
                actor_role=request.membership.role,
                **form.cleaned_data,
            )
        except ServiceError as exc:
            form.add_error(exc.attr, exc.detail)
        else:
            new_key = issued.key  # shown once, in this response only
            form = ApiKeyForm()
    keys = ApiKey.objects.order_by("-created_at")
    return render(
        request,
        "portal/api_keys.html",
        {"keys": keys, "form": form, "new_key": new_key},
        status=400 if form.errors else 200,
    )


@tenant_view(Perm.MANAGE_KEYS)
@require_POST
def revoke_api_key(request, pk: int):
    api_key = get_object_or_404(ApiKey.objects.all(), pk=pk)
    services.revoke_api_key(actor_role=request.membership.role, api_key=api_key)
    messages.success(request, f"Key {api_key.prefix} revoked.")
    return redirect("portal:api_keys")
