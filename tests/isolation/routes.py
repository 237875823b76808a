"""Every URL pattern of the project, enumerated from the resolver, and what each one serves.

A new route is covered without anyone remembering: the isolation tests walk `all_routes()`,
and a route that is neither public nor classified below makes them fail with its name.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver

from ml.models import ModelVersion
from pricing_saas.catalog.models import ImportJob, Product
from pricing_saas.experiments.models import Experiment
from pricing_saas.integrations.models import Connection
from pricing_saas.pricing.models import (
    PriceChange,
    Publication,
    Recommendation,
    RepriceJob,
    RepriceSchedule,
    RuleSet,
)
from tenants.models import ApiKey, Invitation, Membership


@dataclass(frozen=True)
class Route:
    name: str  # namespaced url name, e.g. "api:member-detail"
    pattern: str  # e.g. "api/v1/members/<pk>/"
    kwargs: tuple[str, ...]
    callback: object

    @property
    def is_api(self) -> bool:
        return self.pattern.startswith("api/")

    @property
    def view_class(self):
        return getattr(self.callback, "cls", None)

    def path(self, **values) -> str:
        path = "/" + self.pattern
        for name in self.kwargs:
            path = path.replace(f"<{name}>", str(values[name]))
        return path


def _walk(patterns, prefix: str = "", namespace: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            full_ns = f"{namespace}:{ns}" if namespace and ns else (ns or namespace)
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), full_ns)
        elif isinstance(entry, URLPattern):
            pattern = prefix + str(entry.pattern)
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or ""
            yield pattern, name, entry


def all_routes() -> list[Route]:
    routes = []
    for raw, name, entry in _walk(get_resolver().url_patterns):
        if raw.startswith("admin/"):
            continue  # Django admin: staff only, sees no tenant rows (RLS), tested separately
        if "(?P<format>" in raw or raw.endswith(r"\.(?P<format>[a-z0-9]+)/?$"):
            continue
        pattern = _normalise(raw)
        kwargs = (
            tuple(sorted(entry.pattern.converters)) if hasattr(entry.pattern, "converters") else ()
        )
        if not kwargs:
            kwargs = tuple(_regex_groups(raw))
        routes.append(Route(name=name, pattern=pattern, kwargs=kwargs, callback=entry.callback))
    return routes


def _normalise(raw: str) -> str:
    """Turn `<int:pk>` and `(?P<pk>[^/.]+)` into `<pk>`; drop regex anchors."""
    import re

    text = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", raw)
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", text)
    return text.replace("^", "").replace("$", "")


def _regex_groups(raw: str) -> list[str]:
    import re

    return sorted(set(re.findall(r"\(\?P<(\w+)>", raw)))


# Routes anyone may call: authentication pages and the public API description.
PUBLIC = {
    "login",
    "logout",
    "signup",
    "password_change",
    "password_change_done",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "accept_invitation",
    "api:schema",
    "api:docs",
    # a shop's webhook: no session, the HMAC of the body under the connection's secret
    "integrations:shopify_webhook",
    "integrations:woocommerce_webhook",
    # operations: liveness and readiness for probes; metrics need a token or the host itself
    "healthz",
    "readyz",
    "metrics",
}

# Portal routes that take an object id, and the model that id names.
PORTAL_OBJECT_ROUTES = {
    "portal:change_role": Membership,
    "portal:remove_member": Membership,
    "portal:revoke_invitation": Invitation,
    "portal:revoke_api_key": ApiKey,
    "catalog:import_detail": ImportJob,
    "catalog:import_progress": ImportJob,
    "catalog:import_mapping": ImportJob,
    "ml:progress": ModelVersion,
    "ml:promote": ModelVersion,
    "ml:cancel": ModelVersion,
    "pricing:decide": Recommendation,
    "pricing:sku": Product,
    "kpi:sku_competitors": Product,
    "pricing:rule_edit": RuleSet,
    "pricing:rule_delete": RuleSet,
    "pricing:job_detail": RepriceJob,
    "pricing:job_cancel": RepriceJob,
    "pricing:job_rollback": RepriceJob,
    "pricing:schedule_edit": RepriceSchedule,
    "pricing:schedule_delete": RepriceSchedule,
    "pricing:publication_detail": Publication,
    "pricing:publication_download": Publication,
    "pricing:publication_retry": Publication,
    "pricing:change_rollback": PriceChange,
    "experiments:detail": Experiment,
    "experiments:report": Experiment,
    "experiments:stop": Experiment,
    "experiments:roll_out": Experiment,
    "experiments:roll_back": Experiment,
    "connections:detail": Connection,
    "connections:test": Connection,
    "connections:webhooks": Connection,
    "connections:sync": Connection,
    "connections:publishes": Connection,
    "connections:webhook_secret": Connection,
    "connections:disconnect": Connection,
}

# Routes whose URL parameters are not object ids: every listed combination is fetched by A and
# must show nothing of B.
EXPORT_KINDS = ("products", "sales", "competitor_prices")
PORTAL_PARAM_PAGES = {
    "catalog:export": [{"kind": k, "fmt": f} for k in EXPORT_KINDS for f in ("csv", "xlsx")],
    "pricing:recommendations_export": [{"fmt": f} for f in ("csv", "xlsx")],
}
API_PARAM_PAGES = {"api:export": [{"kind": k} for k in EXPORT_KINDS]}

# Portal pages without ids: each must show only the current tenant's data.
PORTAL_PAGES = {
    "portal:dashboard",
    "portal:team",
    "portal:api_keys",
    "portal:switch_tenant",
    "catalog:catalog",
    "catalog:imports",
    "ml:models",
    "ml:mispricing",
    "pricing:recommendations",
    "pricing:rules",
    "pricing:rule_new",
    "pricing:rule_preview",
    "pricing:jobs",
    "pricing:publications",
    "pricing:settings",
    "portal:audit",
    "portal:audit_export",
    "kpi:performance",
    "kpi:alerts",
    "kpi:competitors",
    "kpi:undercuts",
    "experiments:list",
    "connections:list",
}
PORTAL_POSTS_WITHOUT_ID = {
    # name: a form that, sent by tenant A, names tenant B's objects or identifiers
    "portal:invite": lambda b: {"email": b.users["viewer"].email, "role": "owner"},
    "portal:switch_tenant": lambda b: {"tenant": b.tenant.slug},
    "portal:api_keys": lambda b: {"name": "sneaky", "role": "admin", "tenant": b.tenant.pk},
    "ml:train": lambda b: {"trainer": "baseline", "tenant": b.tenant.pk},
    "ml:rollback": lambda b: {"kind": "text", "tenant": b.tenant.pk},
    "pricing:recommendations": lambda b: {
        "action": "approve",
        "ids": [_id_of(b, "Recommendation")],
        "tenant": b.tenant.pk,
    },
    "pricing:rule_new": lambda b: {
        "name": "x",
        "scope": "all",
        "priority": 0,
        "tenant": b.tenant.pk,
    },
    "pricing:jobs": lambda b: {"tenant": b.tenant.pk},
    "pricing:schedule_new": lambda b: {"cron": "0 5 * * *", "name": "x", "timezone": "UTC"},
    "pricing:publications": lambda b: {"tenant": b.tenant.pk},
    "pricing:settings": lambda b: {"auto_approve": "on", "tenant": b.tenant.pk},
    "pricing:kill_switch": lambda b: {"on": "1", "tenant": b.tenant.pk},
    "kpi:refresh": lambda b: {"tenant": b.tenant.pk, "since": "2024-01-01"},
    "kpi:alerts": lambda b: {"action": "acknowledge", "alert": _alert_of(b), "tenant": b.tenant.pk},
    "kpi:competitors": lambda b: {"undercut_threshold": "1", "tenant": b.tenant.pk},
    "kpi:undercuts": lambda b: {"tenant": b.tenant.pk},
    "catalog:imports": lambda b: {
        "kind": "products",
        "tenant": b.tenant.pk,
        "file": SimpleUploadedFile("p.csv", hostile_products_csv(b).encode()),
    },
    "connections:list": lambda b: {
        "platform": "shopify",
        "shop_url": "http://127.0.0.1:9",  # nothing listens: refused before anything is stored
        "access_token": "shpat_x",
        "tenant": b.tenant.pk,
    },
}


def hostile_products_csv(b) -> str:
    """Products that name B's SKU and ids: they may only ever land in the caller's tenant."""
    from pricing_saas.catalog.models import Product
    from tenants.context import tenant_context

    with tenant_context(b.tenant):
        product = Product.objects.first()
    return f"sku,title,price,tenant_id,id\n{product.sku},hijacked,1.00,{b.tenant.pk},{product.pk}\n"


def hostile_rows(b, kind: str) -> list[dict]:
    from pricing_saas.catalog.models import Product
    from tenants.context import tenant_context

    with tenant_context(b.tenant):
        product = Product.objects.first()
    base = {
        "sku": product.sku,
        "tenant": b.tenant.pk,
        "tenant_id": b.tenant.pk,
        "product_id": product.pk,
    }
    if kind == "products":
        return [{**base, "title": "hijacked", "price": "1.00"}]
    if kind == "sales":
        return [{"date": "2024-01-01", "units": 1, "price": "1.00", **base}]
    return [{"competitor": "X", "price": "1.00", "observed_at": "2024-01-01T00:00:00Z", **base}]


# POST routes that only read (predictions): every role may call them; they must change nothing.
READ_ONLY_POSTS = {"api:reference-price-predictions", "api:rule-set-preview"}

# API collection routes that accept POST: a hostile payload naming tenant B's ids.
API_CREATE_PAYLOADS = {
    "api:invitation-list": lambda b: {
        "email": "x@example.com",
        "role": "viewer",
        "tenant": b.tenant.pk,
    },
    "api:api-key-list": lambda b: {"name": "x", "role": "viewer", "tenant": b.tenant.pk},
    "api:import-list": lambda b: {"kind": "products", "tenant": b.tenant.pk},
    "api:product-bulk": lambda b: hostile_rows(b, "products"),
    "api:sales-bulk": lambda b: hostile_rows(b, "sales"),
    "api:competitor-offer-bulk": lambda b: hostile_rows(b, "competitor_prices"),
    "api:model-version-train": lambda b: {
        "kind": "text",
        "trainer": "baseline",
        "tenant": b.tenant.pk,
    },
    "api:model-version-rollback": lambda b: {"kind": "text", "tenant": b.tenant.pk},
    "api:reference-price-predictions": lambda b: {"products": hostile_rows(b, "products")},
    "api:kill-switch": lambda b: {"on": True, "tenant": b.tenant.pk},
    "api:alert-check": lambda b: {"tenant": b.tenant.pk},
    "api:undercut-alert-check": lambda b: {"tenant": b.tenant.pk},
    "api:alert-policy-rotate-secret": lambda b: {"tenant": b.tenant.pk},
    "api:rule-set-list": lambda b: {"name": "x", "tenant": b.tenant.pk},
    "api:rule-set-preview": lambda b: {
        "scope": "skus",
        "scope_values": ",".join(hostile_skus(b)),
        "tenant": b.tenant.pk,
    },
    "api:schedule-list": lambda b: {"cron": "0 5 * * *", "tenant": b.tenant.pk},
    "api:reprice-job-run": lambda b: {"tenant": b.tenant.pk},
    "api:recommendation-bulk": lambda b: {
        "action": "approve",
        "ids": [_id_of(b, "Recommendation")],
        "tenant": b.tenant.pk,
    },
    "api:recommendation-bulk-preview": lambda b: {
        "action": "approve",
        "ids": [_id_of(b, "Recommendation")],
        "tenant": b.tenant.pk,
    },
    "api:publication-list": lambda b: {"recommendation_ids": [_id_of(b, "Recommendation")]},
    "api:publication-preview": lambda b: {"recommendation_ids": [_id_of(b, "Recommendation")]},
    "api:price-change-rollback": lambda b: {"ids": [_id_of(b, "PriceChange")]},
    "api:connection-list": lambda b: {
        "platform": "shopify",
        "shop_url": "http://127.0.0.1:9",  # nothing listens: refused before anything is stored
        "access_token": "shpat_x",
        "tenant": b.tenant.pk,
    },
    "api:experiment-list": lambda b: {
        "name": "x",
        "days": 14,
        "skus": hostile_skus(b),
        "tenant": b.tenant.pk,
    },
}


def hostile_skus(b) -> list[str]:
    """B's SKUs, named from A: unknown there, so nothing is created."""
    from pricing_saas.catalog.models import Product
    from tenants.context import tenant_context

    with tenant_context(b.tenant):
        return list(Product.objects.values_list("sku", flat=True)[:5])


def _alert_of(b) -> int:
    from pricing_saas.kpi.models import Alert
    from tests.isolation.test_cross_tenant import object_of

    return object_of(b, Alert).pk


def _id_of(b, model_name: str) -> int:
    from pricing_saas.pricing import models
    from tests.isolation.test_cross_tenant import object_of

    return object_of(b, getattr(models, model_name)).pk
