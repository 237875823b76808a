"""factory_boy factories. Tenant-owned rows are always created with an explicit tenant, inside
that tenant's context (row-level security would refuse them otherwise). And
`synthetic_catalog()`: product texts that say what they cost."""

from __future__ import annotations

import datetime as dt
import random

import factory
from django.utils import timezone

from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User
from tenants.roles import Role


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Merchant {n}")
    slug = factory.Sequence(lambda n: f"merchant-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TenantOwnedFactory(factory.django.DjangoModelFactory):
    """Creates the row inside its tenant's context."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with tenant_context(kwargs["tenant"]):
            return super()._create(model_class, *args, **kwargs)


class MembershipFactory(TenantOwnedFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER


class ProductFactory(TenantOwnedFactory):
    class Meta:
        model = "catalog.Product"

    tenant = factory.SubFactory(TenantFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    title = factory.Sequence(lambda n: f"Product {n}")
    price = "19.99"
    cost = "11.00"
    currency = "USD"


class SalesRecordFactory(TenantOwnedFactory):
    class Meta:
        model = "catalog.SalesRecord"

    tenant = factory.SubFactory(TenantFactory)
    product = factory.SubFactory(ProductFactory, tenant=factory.SelfAttribute("..tenant"))
    date = factory.Sequence(lambda n: dt.date(2024, 1, 1) + dt.timedelta(days=n))
    units = 3
    price = "19.99"
    revenue = "59.97"


class CompetitorOfferFactory(TenantOwnedFactory):
    class Meta:
        model = "catalog.CompetitorOffer"

    tenant = factory.SubFactory(TenantFactory)
    product = factory.SubFactory(ProductFactory, tenant=factory.SelfAttribute("..tenant"))
    competitor = "ShopRival"
    price = "18.49"
    observed_at = factory.Sequence(
        lambda n: dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n)
    )


class CompetitorNameFactory(TenantOwnedFactory):
    class Meta:
        model = "catalog.CompetitorName"

    tenant = factory.SubFactory(TenantFactory)
    key = "shoprival"
    name = "ShopRival"


class ImportJobFactory(TenantOwnedFactory):
    class Meta:
        model = "catalog.ImportJob"

    tenant = factory.SubFactory(TenantFactory)
    kind = "products"
    status = "needs_mapping"
    original_name = "secret-bravo-file.csv"
    headers = ["sku", "titel", "price"]


class ModelVersionFactory(TenantOwnedFactory):
    class Meta:
        model = "ml.ModelVersion"

    tenant = factory.SubFactory(TenantFactory)
    kind = "text"
    version = factory.Sequence(lambda n: n + 1)
    status = "ready"
    requested_trainer = "baseline"
    trainer = "baseline"
    message = "secret-bravo-training-note"


class ReferencePriceFactory(TenantOwnedFactory):
    class Meta:
        model = "ml.ReferencePrice"

    tenant = factory.SubFactory(TenantFactory)
    price = "150.00"
    low = "100.00"
    high = "200.00"


class TextModelConfigFactory(TenantOwnedFactory):
    class Meta:
        model = "ml.TextModelConfig"

    tenant = factory.SubFactory(TenantFactory)


class ElasticityFactory(TenantOwnedFactory):
    class Meta:
        model = "ml.Elasticity"

    tenant = factory.SubFactory(TenantFactory)
    elasticity = -1.4
    elasticity_se = 0.3
    typical_price = "19.99"
    units_per_day = 2.5


class RepriceJobFactory(TenantOwnedFactory):
    class Meta:
        model = "pricing.RepriceJob"

    tenant = factory.SubFactory(TenantFactory)
    status = "succeeded"
    message = "secret-bravo-reprice"


class RecommendationFactory(TenantOwnedFactory):
    class Meta:
        model = "pricing.Recommendation"

    tenant = factory.SubFactory(TenantFactory)
    current_price = "19.99"
    recommended_price = "21.49"
    explanation = "secret-bravo-explanation"


class RuleSetFactory(TenantOwnedFactory):
    class Meta:
        model = "pricing.RuleSet"

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"secret-bravo-rules-{n}")
    max_step = "0.10"


class RuleSetVersionFactory(TenantOwnedFactory):
    class Meta:
        model = "pricing.RuleSetVersion"

    tenant = factory.SubFactory(TenantFactory)
    version = 1
    data = factory.LazyFunction(lambda: {"name": "secret-bravo-rules"})


class PricingPolicyFactory(TenantOwnedFactory):
    class Meta:
        model = "pricing.PricingPolicy"

    tenant = factory.SubFactory(TenantFactory)


class RepriceScheduleFactory(TenantOwnedFactory):
    class Meta:
        model = "pricing.RepriceSchedule"

    tenant = factory.SubFactory(TenantFactory)
    name = "secret-bravo-schedule"
    cron = "0 5 * * *"


class PublicationFactory(TenantOwnedFactory):
    class Meta:
        model = "pricing.Publication"

    tenant = factory.SubFactory(TenantFactory)
    publisher = "csv"
    status = "failed"
    message = "secret-bravo-publication"


class PriceChangeFactory(TenantOwnedFactory):
    class Meta:
        model = "pricing.PriceChange"

    tenant = factory.SubFactory(TenantFactory)
    old_price = "20.00"
    new_price = "21.00"
    status = "published"
    created_by = "secret-bravo-change"


class PriceLockFactory(TenantOwnedFactory):
    class Meta:
        model = "pricing.PriceLock"

    tenant = factory.SubFactory(TenantFactory)
    product = factory.SubFactory(ProductFactory, tenant=factory.SelfAttribute("..tenant"))
    until = factory.LazyFunction(dt.date.today)
    reason = "secret-bravo-lock"


class ExperimentFactory(TenantOwnedFactory):
    class Meta:
        model = "experiments.Experiment"

    tenant = factory.SubFactory(TenantFactory)
    name = "secret-bravo-experiment"
    start = factory.LazyFunction(dt.date.today)
    days = 14


class ExperimentUnitFactory(TenantOwnedFactory):
    class Meta:
        model = "experiments.ExperimentUnit"

    tenant = factory.SubFactory(TenantFactory)
    experiment = factory.SubFactory(ExperimentFactory, tenant=factory.SelfAttribute("..tenant"))
    product = factory.SubFactory(ProductFactory, tenant=factory.SelfAttribute("..tenant"))
    arm = "control"
    stratum = "secret-bravo-stratum"
    price_before = "20.00"
    price_test = "20.00"


class DailyKpiFactory(TenantOwnedFactory):
    class Meta:
        model = "kpi.DailyKpi"

    tenant = factory.SubFactory(TenantFactory)
    product = factory.SubFactory(ProductFactory, tenant=factory.SelfAttribute("..tenant"))
    date = factory.Sequence(lambda n: dt.date(2024, 1, 1) + dt.timedelta(days=n))
    units = 3
    revenue = "59.97"
    unit_cost = "11.00"
    cost_known = True
    cost_derived = False
    profit = "26.97"
    competitor_price = "18.49"


class AuditEventFactory(TenantOwnedFactory):
    class Meta:
        model = "tenants.AuditEvent"

    tenant = factory.SubFactory(TenantFactory)
    actor = "secret-bravo-actor"
    action = "rules.update"
    summary = "secret-bravo-audit"


WORDS = {
    "cheap": ["cable", "sticker", "pen", "sock", "spoon", "keychain", "eraser"],
    "mid": ["kettle", "backpack", "headphones", "lamp", "shoes", "blender", "jacket"],
    "dear": ["television", "laptop", "refrigerator", "sofa", "camera", "washing machine", "phone"],
}
PRICES = {"cheap": 3.0, "mid": 60.0, "dear": 900.0}


def synthetic_catalog(n: int = 240, seed: int = 0) -> tuple[list[str], list[float]]:
    """Texts whose words say what they cost, with noise: something any trainer can learn."""
    rng = random.Random(seed)
    texts, prices = [], []
    for i in range(n):
        tier = ("cheap", "mid", "dear")[i % 3]
        item = rng.choice(WORDS[tier])
        texts.append(f"{rng.choice(['acme', 'zenith', 'nova'])} {item} model {rng.randint(1, 99)}")
        prices.append(round(PRICES[tier] * rng.uniform(0.7, 1.4), 2))
    return texts, prices


def _encrypted(secrets: dict) -> str:
    from pricing_saas.integrations import crypto

    return crypto.encrypt(secrets)


class AlertPolicyFactory(TenantOwnedFactory):
    class Meta:
        model = "kpi.AlertPolicy"

    tenant = factory.SubFactory(TenantFactory)
    webhook_url = "https://hooks.bravo.example.com/secret-bravo-hook"
    webhook_secret = factory.LazyFunction(lambda: _encrypted({"key": "whsec_secret_bravo_key"}))


class AlertCheckDueFactory(TenantOwnedFactory):
    class Meta:
        model = "kpi.AlertCheckDue"

    tenant = factory.SubFactory(TenantFactory)
    due_at = factory.LazyFunction(timezone.now)
    scheduled_at = factory.LazyFunction(timezone.now)


class AlertFactory(TenantOwnedFactory):
    class Meta:
        model = "kpi.Alert"

    tenant = factory.SubFactory(TenantFactory)
    kind = "profit_shortfall"
    subject = "secret-bravo-subject"
    message = "secret-bravo-alert"


class UndercutAlertFactory(TenantOwnedFactory):
    class Meta:
        model = "kpi.UndercutAlert"

    tenant = factory.SubFactory(TenantFactory)
    product = factory.SubFactory(ProductFactory, tenant=factory.SelfAttribute("..tenant"))
    competitor = "secret-bravo-rival"
    our_price = "20.00"
    their_price = "17.00"
    gap = "0.1500"
    threshold = "0.050"
    observed_at = factory.LazyFunction(lambda: dt.datetime.now(dt.UTC))
    opened_at = factory.LazyFunction(lambda: dt.datetime.now(dt.UTC))
    checked_at = factory.LazyFunction(lambda: dt.datetime.now(dt.UTC))


class ConnectionFactory(TenantOwnedFactory):
    class Meta:
        model = "integrations.Connection"

    tenant = factory.SubFactory(TenantFactory)
    platform = "shopify"
    shop_url = factory.Sequence(lambda n: f"https://secret-bravo-shop-{n}.myshopify.com")
    name = "secret-bravo-shop"
    currency = "USD"
    credentials = factory.LazyFunction(
        lambda: __import__("pricing_saas.integrations.crypto", fromlist=["encrypt"]).encrypt(
            {"access_token": "shpat_secret_bravo_token", "app_secret": "bravo-app-secret"}
        )
    )


class SyncRunFactory(TenantOwnedFactory):
    class Meta:
        model = "integrations.SyncRun"

    tenant = factory.SubFactory(TenantFactory)
    connection = factory.SubFactory(ConnectionFactory, tenant=factory.SelfAttribute("..tenant"))
    status = "failed"
    message = "secret-bravo-sync"


class ShopVariantFactory(TenantOwnedFactory):
    class Meta:
        model = "integrations.ShopVariant"

    tenant = factory.SubFactory(TenantFactory)
    connection = factory.SubFactory(ConnectionFactory, tenant=factory.SelfAttribute("..tenant"))
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    product_ref = factory.Sequence(lambda n: f"gid://shopify/Product/{n}")
    variant_ref = factory.Sequence(lambda n: f"gid://shopify/ProductVariant/{n}")
    price = "19.99"


class ShopOrderLineFactory(TenantOwnedFactory):
    class Meta:
        model = "integrations.ShopOrderLine"

    tenant = factory.SubFactory(TenantFactory)
    connection = factory.SubFactory(ConnectionFactory, tenant=factory.SelfAttribute("..tenant"))
    order_ref = factory.Sequence(lambda n: f"gid://shopify/Order/{n}")
    line_ref = factory.Sequence(lambda n: f"gid://shopify/LineItem/{n}")
    sku = "SKU-00001"
    date = dt.date(2024, 1, 1)
    quantity = 2
    unit_price = "9.99"
    currency = "USD"
    order_updated_at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


class WebhookEventFactory(TenantOwnedFactory):
    class Meta:
        model = "integrations.WebhookEvent"

    tenant = factory.SubFactory(TenantFactory)
    connection = factory.SubFactory(ConnectionFactory, tenant=factory.SelfAttribute("..tenant"))
    event_id = factory.Sequence(lambda n: f"event-{n}")
    topic = "products/update"
