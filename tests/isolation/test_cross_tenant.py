"""Tenant A can neither read, list, change nor delete tenant B's objects, on every route.

Routes come from the resolver (routes.py), so a new endpoint is walked automatically; one that is
not classified fails `test_every_route_is_classified` until someone decides what it serves.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.forms.models import model_to_dict
from django.test import Client
from rest_framework.test import APIClient

from pricing_saas.portal.services import invite_member
from tenants.context import tenant_context
from tenants.models import ApiKey, Invitation, Membership, TenantOwned
from tenants.roles import Role
from tests.factories import (
    AlertCheckDueFactory,
    AlertFactory,
    AlertPolicyFactory,
    AuditEventFactory,
    CompetitorNameFactory,
    CompetitorOfferFactory,
    ConnectionFactory,
    DailyKpiFactory,
    ElasticityFactory,
    ExperimentFactory,
    ExperimentUnitFactory,
    ImportJobFactory,
    ModelVersionFactory,
    PriceChangeFactory,
    PriceLockFactory,
    PricingPolicyFactory,
    ProductFactory,
    PublicationFactory,
    RecommendationFactory,
    ReferencePriceFactory,
    RepriceJobFactory,
    RepriceScheduleFactory,
    RuleSetFactory,
    RuleSetVersionFactory,
    SalesRecordFactory,
    ShopOrderLineFactory,
    ShopVariantFactory,
    SyncRunFactory,
    TextModelConfigFactory,
    UndercutAlertFactory,
    WebhookEventFactory,
)

from .routes import (
    API_CREATE_PAYLOADS,
    API_PARAM_PAGES,
    PORTAL_OBJECT_ROUTES,
    PORTAL_PAGES,
    PORTAL_PARAM_PAGES,
    PORTAL_POSTS_WITHOUT_ID,
    PUBLIC,
    all_routes,
)

pytestmark = pytest.mark.django_db

UNSAFE = ("post", "put", "patch", "delete")


@pytest.fixture
def world_b(world_b):
    """Tenant B with at least one object of every tenant-owned model, before any snapshot."""
    for model in tenant_models():
        object_of(world_b, model)
    return world_b


def tenant_models():
    return [m for m in apps.get_models() if issubclass(m, TenantOwned)]


VOLATILE = {"last_used_at"}  # bookkeeping of a key's own use, not a change by the caller


def snapshot(world) -> dict:
    """Every tenant-owned row of a tenant, as plain values."""
    with tenant_context(world.tenant):
        return {
            model.__name__: [
                {k: v for k, v in model_to_dict(obj).items() if k not in VOLATILE}
                for obj in model.objects.order_by("pk")
            ]
            for model in tenant_models()
        }


def object_of(world, model):
    """One object of `model` belonging to `world`'s tenant (created when there is none)."""
    with tenant_context(world.tenant):
        if model is Membership:
            return Membership.objects.get(user=world.users[Role.VIEWER])
        if model is ApiKey:
            return ApiKey.objects.get(name="viewer key")
        if model is Invitation:
            obj = Invitation.objects.first()
            if obj is None:
                obj = invite_member(
                    tenant=world.tenant,
                    actor=None,
                    actor_role=Role.OWNER,
                    email="invitee@bravo.example.com",
                    role=Role.VIEWER,
                ).invitation
            return obj
    factories = {
        "Product": ProductFactory,
        "SalesRecord": SalesRecordFactory,
        "CompetitorOffer": CompetitorOfferFactory,
        "CompetitorName": CompetitorNameFactory,
        "ImportJob": ImportJobFactory,
        "ModelVersion": ModelVersionFactory,
        "ReferencePrice": ReferencePriceFactory,
        "TextModelConfig": TextModelConfigFactory,
        "Elasticity": ElasticityFactory,
        "RepriceJob": RepriceJobFactory,
        "Recommendation": RecommendationFactory,
        "RuleSet": RuleSetFactory,
        "RuleSetVersion": RuleSetVersionFactory,
        "PricingPolicy": PricingPolicyFactory,
        "RepriceSchedule": RepriceScheduleFactory,
        "Publication": PublicationFactory,
        "PriceChange": PriceChangeFactory,
        "PriceLock": PriceLockFactory,
        "Experiment": ExperimentFactory,
        "ExperimentUnit": ExperimentUnitFactory,
        "AuditEvent": AuditEventFactory,
        "DailyKpi": DailyKpiFactory,
        "Alert": AlertFactory,
        "UndercutAlert": UndercutAlertFactory,
        "AlertPolicy": AlertPolicyFactory,
        "AlertCheckDue": AlertCheckDueFactory,
        "Connection": ConnectionFactory,
        "SyncRun": SyncRunFactory,
        "ShopVariant": ShopVariantFactory,
        "ShopOrderLine": ShopOrderLineFactory,
        "WebhookEvent": WebhookEventFactory,
    }
    if model.__name__ in factories:
        with tenant_context(world.tenant):
            existing = model.objects.first()
        if existing is not None:
            return existing
        factory = factories[model.__name__]
        extra = {}
        from pricing_saas.catalog.models import Product

        if model.__name__ in (
            "SalesRecord",
            "CompetitorOffer",
            "ReferencePrice",
            "Elasticity",
            "Recommendation",
            "PriceChange",
            "DailyKpi",
            "UndercutAlert",
        ):
            extra["product"] = object_of(world, Product)
        if model.__name__ == "Recommendation":
            from pricing_saas.pricing.models import RepriceJob

            extra["job"] = object_of(world, RepriceJob)
        if model.__name__ == "RuleSetVersion":
            from pricing_saas.pricing.models import RuleSet

            extra["rule_set"] = object_of(world, RuleSet)
        if model.__name__ == "PriceChange":
            from pricing_saas.pricing.models import Publication

            extra["publication"] = object_of(world, Publication)
        if model.__name__ in ("SyncRun", "ShopVariant", "ShopOrderLine", "WebhookEvent"):
            from pricing_saas.integrations.models import Connection

            extra["connection"] = object_of(world, Connection)
        if model.__name__ in ("ReferencePrice", "Elasticity"):
            from ml.models import ModelVersion

            extra["model_version"] = object_of(world, ModelVersion)
        return factory(tenant=world.tenant, **extra)
    raise AssertionError(f"no object factory for {model.__name__}: add one to object_of()")


def secrets_of(world) -> list[str]:
    """Strings that identify tenant B and must never appear in A's responses."""
    with tenant_context(world.tenant):
        prefixes = list(ApiKey.objects.values_list("prefix", flat=True))
        invitations = list(Invitation.objects.values_list("email", flat=True))
        from pricing_saas.catalog.models import ImportJob, Product

        products = [v for p in Product.objects.values_list("sku", "title") for v in p]
        files = list(ImportJob.objects.values_list("original_name", flat=True))
        from ml.models import ModelVersion

        files += list(ModelVersion.objects.values_list("message", flat=True))
        from pricing_saas.integrations.models import Connection

        files += [v for c in Connection.objects.values_list("shop_url", "name") for v in c]
        files += ["shpat_secret_bravo_token", "bravo-app-secret"]
    emails = [u.email for u in world.users.values()]
    return [
        world.tenant.name,
        world.tenant.slug,
        *emails,
        *prefixes,
        *invitations,
        *products,
        *files,
    ]


def body_text(response) -> str:
    """A response's text, whether plain, streamed (file downloads) or an .xlsx workbook."""
    import io
    import zipfile

    raw = b"".join(response.streaming_content) if response.streaming else response.content
    if raw.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            return "".join(
                archive.read(n).decode() for n in archive.namelist() if n.endswith(".xml")
            )
    return raw.decode()


def api_clients(world) -> dict[str, APIClient]:
    session = APIClient()
    session.force_login(world.users[Role.OWNER])
    return {"admin key": world.api(Role.ADMIN), "owner session": session}


def test_every_route_is_classified():
    unclassified = []
    for route in all_routes():
        if route.name in PUBLIC:
            continue
        if route.name in API_PARAM_PAGES or route.name in PORTAL_PARAM_PAGES:
            continue
        if route.is_api:
            if route.kwargs and getattr(route.view_class, "model", None) is None:
                unclassified.append(f"{route.name}: API object route without a `model`")
            actions = getattr(route.callback, "actions", None) or {}
            posts = "post" in actions or (not actions and hasattr(route.view_class, "post"))
            if posts and not route.kwargs and route.name not in API_CREATE_PAYLOADS:
                unclassified.append(f"{route.name}: POST route without a hostile payload")
        elif route.kwargs:
            if route.name not in PORTAL_OBJECT_ROUTES:
                unclassified.append(
                    f"{route.name}: portal object route not in PORTAL_OBJECT_ROUTES"
                )
        elif route.name not in PORTAL_PAGES and route.name not in PORTAL_POSTS_WITHOUT_ID:
            unclassified.append(f"{route.name}: portal route not classified")
    assert not unclassified, "classify these routes in tests/isolation/routes.py:\n" + "\n".join(
        unclassified
    )


def test_api_object_routes_answer_404_and_change_nothing(world_a, world_b):
    routes = [
        r
        for r in all_routes()
        if r.is_api and r.kwargs and r.name not in PUBLIC and r.name not in API_PARAM_PAGES
    ]
    assert routes, "expected API object routes"
    before = snapshot(world_b)
    for route in routes:
        target = object_of(world_b, route.view_class.model)
        path = route.path(pk=target.pk)
        missing = route.path(pk=10**9)
        for label, client in api_clients(world_a).items():
            for method in ("get", *UNSAFE):
                response = getattr(client, method)(path, {"role": "viewer"}, format="json")
                # 403 only where A's role lacks the permission whatever the object is; the
                # answer must be the same as for an id that exists nowhere (no oracle).
                assert response.status_code in (403, 404, 405), (
                    f"{label} {method.upper()} {path}: {response.status_code}"
                )
                control = getattr(client, method)(missing, {"role": "viewer"}, format="json")
                assert response.status_code == control.status_code, f"{method} {path}"
                assert response.json() == control.json()
    assert snapshot(world_b) == before


def test_api_lists_show_nothing_of_b(world_a, world_b):
    hidden = secrets_of(world_b)
    paths = []
    for route in all_routes():
        if not route.is_api or route.name in PUBLIC:
            continue
        if route.name in API_PARAM_PAGES:
            paths += [route.path(**params) for params in API_PARAM_PAGES[route.name]]
        elif not route.kwargs:
            paths.append(route.path())
    for path in paths:
        for label, client in api_clients(world_a).items():
            response = client.get(path)
            assert response.status_code in (200, 403, 405), f"{label} GET {path}"
            text = body_text(response)
            for secret in hidden:
                assert secret not in text, f"{label} GET {path} shows {secret!r}"


def test_api_writes_naming_b_create_nothing_in_b(world_a, world_b):
    before = snapshot(world_b)
    for route in all_routes():
        if route.name not in API_CREATE_PAYLOADS:
            continue
        payload = API_CREATE_PAYLOADS[route.name](world_b)
        for client in api_clients(world_a).values():
            client.post(route.path(), payload, format="json")
    assert snapshot(world_b) == before
    # Whatever was created went to A, the caller's own tenant.
    with tenant_context(world_a.tenant):
        assert ApiKey.objects.filter(name="x").count() <= 1
    for model in tenant_models():
        assert model.unscoped.count() == 0  # no tenant set: RLS shows nothing at all


def test_portal_object_routes_answer_404_and_change_nothing(world_a, world_b):
    client = Client()
    client.force_login(world_a.users[Role.OWNER])
    before = snapshot(world_b)
    for route in all_routes():
        if route.name not in PORTAL_OBJECT_ROUTES:
            continue
        target = object_of(world_b, PORTAL_OBJECT_ROUTES[route.name])
        path = route.path(pk=target.pk)
        answers = {client.post(path, {"role": "viewer"}).status_code, client.get(path).status_code}
        assert 404 in answers and answers <= {404, 405}, f"{path}: {answers}"
    assert snapshot(world_b) == before


def test_portal_pages_show_nothing_of_b(world_a, world_b):
    hidden = secrets_of(world_b)
    client = Client()
    client.force_login(world_a.users[Role.OWNER])
    paths = []
    for route in all_routes():
        if route.name in PORTAL_PAGES:
            paths.append(route.path())
        elif route.name in PORTAL_PARAM_PAGES:
            paths += [route.path(**params) for params in PORTAL_PARAM_PAGES[route.name]]
    for path in paths:
        response = client.get(path)
        assert response.status_code in (200, 405), path
        text = body_text(response)
        for secret in hidden:
            assert secret not in text, f"{path} shows {secret!r}"


def test_portal_posts_naming_b_change_nothing_in_b(world_a, world_b):
    client = Client()
    client.force_login(world_a.users[Role.OWNER])
    before = snapshot(world_b)
    for route in all_routes():
        if route.name in PORTAL_POSTS_WITHOUT_ID:
            client.post(route.path(), PORTAL_POSTS_WITHOUT_ID[route.name](world_b))
    assert snapshot(world_b) == before
    # Switching to B's slug is refused: A's owner still works in A.
    assert client.post("/switch/", {"tenant": world_b.tenant.slug}).status_code == 404
    assert world_a.tenant.name in client.get("/").content.decode()


def test_key_of_b_never_acts_in_a(world_a, world_b):
    before = snapshot(world_a)
    client = world_b.api(Role.ADMIN)
    response = client.get("/api/v1/tenant/", HTTP_X_TENANT=world_a.tenant.slug)
    assert response.json()["slug"] == world_b.tenant.slug  # the key decides, not the header
    target = object_of(world_a, Membership)
    assert client.get(f"/api/v1/members/{target.pk}/").status_code == 404
    assert snapshot(world_a) == before


def test_every_api_route_uses_the_tenant_base_and_scopes_in_sql(world_a, rf):
    """Layer 3 on its own: every API view derives from the tenant base, and the queryset it
    serves filters by the current tenant in SQL (not only through row-level security)."""
    from pricing_saas.web.base import TenantScopedMixin

    for route in all_routes():
        if not route.is_api or route.name in PUBLIC:
            continue
        assert issubclass(route.view_class, TenantScopedMixin), route.name
        if getattr(route.view_class, "model", None) is None:
            continue
        view = route.view_class()
        view.request = rf.get("/")
        view.kwargs = {}
        view.format_kwarg = None
        with tenant_context(world_a.tenant):
            sql = str(view.get_queryset().query)
        assert f'"tenant_id" = {world_a.tenant.pk}' in sql, f"{route.name}: {sql}"
