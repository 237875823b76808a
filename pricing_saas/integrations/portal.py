"""The portal's Connections page (admins and owners: `manage_settings`, reads included, like
the API): the tenant's shops, connecting one, and per connection test, sync now, publishes
on/off, a new webhook secret, disconnect, and the sync history with a running sync's progress.

Views parse and format; every write is a call to `services`. Credentials go from the form to
the service and nowhere else: they are password inputs, never rendered back, and no page shows
more of them than whether a webhook secret is set.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pricing_saas.web.errors import ServiceError
from pricing_saas.web.views import tenant_view
from tenants.roles import Perm

from . import services
from .api import webhook_url
from .crypto import DecryptionError
from .models import Connection, SyncRun

RUNS_SHOWN = 50  # sync runs in a connection's history
REPORT_SHOWN = 20  # first rows of a run's skip report


def _secret_input():
    # render_value=False (the default, stated): a refused form never sends a secret back
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})


class ConnectForm(forms.Form):
    """What connecting a shop asks for. The service checks the rest (the address, that the
    platform's credentials are there, that the shop accepts them) and names the field."""

    platform = forms.ChoiceField(choices=Connection.Platform.choices, label="Platform")
    shop_url = forms.CharField(
        max_length=300,
        label="Shop address",
        help_text="https://example.myshopify.com, or your WooCommerce site's address",
        widget=forms.URLInput(attrs={"placeholder": "https://example.myshopify.com"}),
    )
    access_token = forms.CharField(
        required=False,
        max_length=500,
        strip=False,
        label="Admin API access token",
        help_text="shpat_…: Shopify admin → Settings → Apps and sales channels → Develop apps",
        widget=_secret_input(),
    )
    consumer_key = forms.CharField(
        required=False,
        max_length=500,
        strip=False,
        label="Consumer key",
        help_text="ck_…: WooCommerce → Settings → Advanced → REST API (read/write)",
        widget=_secret_input(),
    )
    consumer_secret = forms.CharField(
        required=False,
        max_length=500,
        strip=False,
        label="Consumer secret",
        help_text="cs_…: shown once by WooCommerce next to the consumer key",
        widget=_secret_input(),
    )
    app_secret = forms.CharField(
        required=False,
        max_length=500,
        strip=False,
        label="Webhook secret (optional)",
        help_text="Shopify: the app's client secret; WooCommerce: the secret of your webhooks. "
        "Webhooks are verified with it.",
        widget=_secret_input(),
    )
    publishes = forms.BooleanField(
        required=False, initial=True, label="Publish approved prices to this shop"
    )

    # Which credential fields belong to which platform: only those are sent to the service.
    CREDENTIALS = {
        Connection.Platform.SHOPIFY: ("access_token",),
        Connection.Platform.WOOCOMMERCE: ("consumer_key", "consumer_secret"),
    }
    SECRETS = ("access_token", "consumer_key", "consumer_secret", "app_secret")

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        platform = data["platform"]
        return {
            "platform": platform,
            "shop_url": data["shop_url"],
            **{name: data[name] for name in self.CREDENTIALS[platform]},
            "app_secret": data["app_secret"],
            "publishes": data["publishes"],
        }

    def show_error(self, exc: ServiceError) -> None:
        """A service's refusal, next to the field it names (else above the form)."""
        self.add_error(exc.attr if exc.attr in self.fields else None, exc.detail)


def _next(request, default: str) -> str:
    """Where an action goes back to: `next` only when it is a path on this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _connection(pk: int) -> Connection:
    """The current tenant's connection (scoped manager: another tenant's id is a 404)."""
    return get_object_or_404(Connection.objects.all(), pk=pk)


def _webhook_secret_state(connection: Connection) -> str:
    if not connection.has_credentials:
        return "deleted"
    try:
        return "set" if connection.secrets().get("app_secret") else "not set"
    except DecryptionError:
        return "unreadable (connect the shop again)"


def _decorate(connection: Connection, latest: SyncRun | None = None) -> Connection:
    connection.webhook_url = webhook_url(connection)
    connection.webhook_secret = _webhook_secret_state(connection)
    connection.is_disconnected = connection.status == Connection.Status.DISCONNECTED
    connection.latest_run = latest
    return connection


def _runs(connection: Connection) -> list[SyncRun]:
    runs = list(
        SyncRun.objects.filter(connection=connection).order_by("-created_at", "-pk")[:RUNS_SHOWN]
    )
    for run in runs:
        run.report_shown = run.report[:REPORT_SHOWN] if isinstance(run.report, list) else []
    return runs


def _list_context(form: ConnectForm) -> dict:
    connections = list(Connection.objects.select_related("tenant").order_by("pk"))
    newest = (  # each connection's newest run, in one query (DISTINCT ON)
        SyncRun.objects.filter(connection__in=connections)
        .order_by("connection_id", "-created_at", "-pk")
        .distinct("connection_id")
        .defer("report")
    )
    latest = {run.connection_id: run for run in newest}
    return {
        "connections": [_decorate(c, latest.get(c.pk)) for c in connections],
        "form": form,
        "sync_kinds": SyncRun.Kind.choices,
    }


@tenant_view(Perm.MANAGE_SETTINGS)
@require_http_methods(["GET", "POST"])
def connection_list(request):
    """The tenant's shops and the connect form (a POST connects one)."""
    if request.method == "POST":
        form = ConnectForm(request.POST)
        if form.is_valid():
            try:
                connection = services.connect(**form.service_arguments())
            except ServiceError as exc:  # ConflictError included: already connected
                form.show_error(exc)
            else:
                messages.success(
                    request,
                    f"{connection.get_platform_display()} shop {connection.shop_url} connected. "
                    "Paste its webhook address into the shop, then sync.",
                )
                return redirect("connections:detail", pk=connection.pk)
        return render(request, "integrations/connections.html", _list_context(form), status=400)
    return render(request, "integrations/connections.html", _list_context(ConnectForm()))


@tenant_view(Perm.MANAGE_SETTINGS)
@require_GET
def connection_detail(request, pk: int):
    """One connection, its actions and its sync history. Polled by htmx (the history alone)
    while a sync is queued or running, like a reprice job's page; when it has ended, the
    whole page reloads (the connection's sync times moved)."""
    connection = _connection(pk)
    runs = _runs(connection)
    context = {
        "connection": _decorate(connection, runs[0] if runs else None),
        "runs": runs,
        "active": next((r for r in runs if r.is_active), None),
        "sync_kinds": SyncRun.Kind.choices,
    }
    if not request.htmx:
        return render(request, "integrations/detail.html", context)
    response = render(request, "integrations/_runs.html", context)
    if context["active"] is None:  # the sync it polled for ended: show the new sync times
        response["HX-Refresh"] = "true"
    return response


def _action(request, pk: int, do, *, to_history: bool = False):
    """Run one action on a connection, then redirect (back to the page it came from, or to
    the sync history); a refusal is an error message, never a 500."""
    connection = _connection(pk)
    try:
        do(connection)
    except ServiceError as exc:
        messages.error(request, f"{exc.attr}: {exc.detail}" if exc.attr else exc.detail)
    history = reverse("connections:detail", args=[connection.pk])
    return redirect(history if to_history else _next(request, history))


@tenant_view(Perm.MANAGE_SETTINGS)
@require_POST
def connection_test(request, pk: int):
    def do(connection):
        tested = services.test_connection(connection=connection)
        if tested.status == Connection.Status.CONNECTED:
            messages.success(request, f"{tested.shop_url} answered: connected.")
        else:
            messages.error(request, f"{tested.shop_url} is failing: {tested.status_reason}")

    return _action(request, pk, do)


@tenant_view(Perm.MANAGE_SETTINGS)
@require_POST
def connection_webhooks(request, pk: int):
    def do(connection):
        outcome = services.register_webhooks(connection=connection)
        created = [t for t, what in outcome.items() if what == "created"]
        refused = {t: what for t, what in outcome.items() if what not in ("created", "present")}
        if refused:
            messages.error(
                request,
                "The shop refused: " + "; ".join(f"{t} ({why})" for t, why in refused.items()),
            )
        messages.success(
            request,
            f"Webhooks: {len(created)} subscribed, "
            f"{sum(1 for w in outcome.values() if w == 'present')} were already.",
        )

    return _action(request, pk, do)


@tenant_view(Perm.MANAGE_SETTINGS)
@require_POST
def connection_sync(request, pk: int):
    def do(connection):
        run = services.start_sync(
            connection=connection,
            kind=request.POST.get("kind") or SyncRun.Kind.ALL,
            full=request.POST.get("full") == "on",
            trigger="manual",
        )
        what = run.get_kind_display().lower()
        messages.success(
            request, f"Sync {run.pk} ({what}{', full' if run.full else ''}) is {run.status}."
        )

    return _action(request, pk, do, to_history=True)  # where its progress shows


@tenant_view(Perm.MANAGE_SETTINGS)
@require_POST
def connection_publishes(request, pk: int):
    def do(connection):
        on = request.POST.get("publishes") == "1"
        services.update_connection(connection=connection, publishes=on)
        messages.success(
            request,
            f"{connection.shop_url}: approved prices are "
            + ("published to this shop." if on else "no longer published to this shop."),
        )

    return _action(request, pk, do)


@tenant_view(Perm.MANAGE_SETTINGS)
@require_POST
def connection_secret(request, pk: int):
    def do(connection):
        secret = request.POST.get("app_secret", "").strip()
        if not secret:
            raise ServiceError("enter the new webhook secret", attr="app_secret")
        if len(secret) > 500:
            raise ServiceError(
                "the webhook secret is longer than 500 characters", attr="app_secret"
            )
        services.update_connection(connection=connection, app_secret=secret)
        messages.success(
            request,
            f"{connection.shop_url}: webhook secret replaced; webhooks signed with the "
            "old one are now refused.",
        )

    return _action(request, pk, do)


@tenant_view(Perm.MANAGE_SETTINGS)
@require_POST
def connection_disconnect(request, pk: int):
    def do(connection):
        services.disconnect(connection=connection, reason=request.POST.get("reason", "")[:200])
        messages.success(
            request,
            f"{connection.shop_url} disconnected: its credentials are deleted; the products "
            "and sales imported from it stay.",
        )

    return _action(request, pk, do)
