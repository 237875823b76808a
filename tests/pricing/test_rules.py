"""Rule sets (`pricing_saas/pricing/rules.py`): validation that names the field, versions,
precedence, and the rules shaping what a reprice job recommends."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing_saas.catalog.models import Product
from pricing_saas.pricing import approvals, rules
from pricing_saas.pricing.models import Recommendation
from pricing_saas.web.errors import ServiceError
from tenants.context import actor_context, tenant_context
from tenants.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("run_on_commit_at_once")]


def test_rule_sets_resolve_by_precedence_and_shape_recommendations(shop, reprice):
    with tenant_context(shop.tenant), actor_context(None, "ana@shop.test"):
        base = rules.save_rule_set(values={"name": "Default", "max_step": "0.10"})
        rules.save_rule_set(
            values={
                "name": "Category a",
                "scope": "category",
                "scope_values": "a",
                "max_step": "0.06",
                "ending": "0.99",
            }
        )
        rules.save_rule_set(rule_set=base, values={"max_step": "0.05"})  # a new version
        reprice()
        recs = {r.product.sku: r for r in Recommendation.objects.select_related("product")}
        base.refresh_from_db()
        assert base.version == 2 and base.versions.count() == 2
        assert Decimal(base.versions.get(version=1).data["max_step"]) == Decimal("0.1")
        assert AuditEvent.objects.filter(action="rules.update", actor="ana@shop.test").exists()
    p0, p15 = recs["P0"], recs["P15"]  # category a (6 % step, .99) and b (5 % from Default)
    assert p0.rule_sets == ["Default", "Category a"] and p15.rule_sets == ["Default"]
    assert abs(p0.recommended_price / p0.current_price - 1) <= Decimal("0.06")
    # inelastic: raised to the ending inside the step (20.99), never cut to 19.99
    assert p0.recommended_price == Decimal("20.99") and "ending" in p0.binding_rules
    assert abs(p15.recommended_price / p15.current_price - 1) <= Decimal("0.0501")


@pytest.mark.parametrize(
    "values, attr",
    [
        ({"name": ""}, "name"),
        ({"name": "x", "scope": "brand"}, "scope_values"),
        ({"name": "x", "max_step": "2"}, "max_step"),
        ({"name": "x", "ending": "abc"}, "ending"),
        ({"name": "x", "min_price": "10", "max_price": "5"}, "min_price"),
        ({"name": "x", "objective": "market share"}, "objective"),
        ({"name": "x", "min_gain_abs": "-0.5"}, "min_gain_abs"),
        ({"name": "x", "min_gain_rel": "NaN"}, "min_gain_rel"),
        ({"name": "x", "evidence_margin": "-1"}, "evidence_margin"),
        ({"name": "x", "window_change": "inf"}, "window_change"),
        ({"name": "x", "window_days": "2.5"}, "window_days"),
    ],
)
def test_bad_rule_sets_name_the_field(world_a, values, attr):
    with tenant_context(world_a.tenant), pytest.raises(ServiceError) as err:
        rules.save_rule_set(values=values)
    assert err.value.attr == attr


def test_clearance_and_volume_floors_through_the_reprice_job(shop, reprice):
    """Inelastic SKUs (P0-P9) would rise; a volume floor holds them, a clearance rule cuts the
    price of an overstocked SKU until its expected sales clear the stock in time."""
    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        Product.objects.filter(sku="P1").update(stock=100_000)  # years of stock
        rules.save_rule_set(
            values={
                "name": "Keep volume",
                "scope": "skus",
                "scope_values": ["P0"],
                "min_units_share": "0.99",
            }
        )
        rules.save_rule_set(
            values={
                "name": "Clear P1",
                "scope": "skus",
                "scope_values": ["P1"],
                "clearance_days": 30,
            }
        )
        job = reprice()
        recs = {
            r.product.sku: r
            for r in Recommendation.objects.filter(job=job).select_related("product")
        }
    free, kept, cleared = recs["P2"], recs["P0"], recs["P1"]
    assert free.recommended_price > free.current_price  # inelastic: up
    assert kept.expected_units >= 0.99 * kept.expected_units_now - 1e-6
    assert "min_units" in kept.binding_rules and "volume floor" in kept.explanation
    assert cleared.recommended_price < cleared.current_price  # clearance: down (to the step)
    assert "min_units" in cleared.binding_rules


def test_clearance_counts_every_days_units_with_the_skus_promotions(shop, reprice):
    """The curve's units are a shelf day's; the stock sells on every day, promotions too: a
    SKU whose recent promotions double its units a day clears in time at a price whose shelf
    days alone would not (its lift stored with the estimates, `Elasticity.promo_lift`)."""
    from ml.models import Elasticity

    with tenant_context(shop.tenant):
        approvals.update_policy(auto_approve=False)
        first = reprice()
        per_day = Recommendation.objects.get(job=first, product__sku="P1").expected_units_now
        Product.objects.filter(sku="P1").update(stock=round(per_day * 30 * 1.5))
        rules.save_rule_set(
            values={"name": "Clear P1", "scope": "skus", "scope_values": ["P1"],
                    "clearance_days": 30}
        )  # fmt: skip
        shelf_only = Recommendation.objects.get(job=reprice(), product__sku="P1")
        Elasticity.objects.filter(product__sku="P1").update(promo_lift=2.0)
        promoted = Recommendation.objects.get(job=reprice(), product__sku="P1")
    # shelf days alone sell 1.0 of the 1.5 needed: cut; with promotions 2.0: no cut needed
    assert shelf_only.recommended_price < shelf_only.current_price
    assert "min_units" in shelf_only.binding_rules
    assert promoted.recommended_price >= promoted.current_price
    assert promoted.expected_units * 2.0 * 30 >= 1.5 * per_day * 30 - 1e-6


def test_clearance_days_must_be_whole(world_a):
    with tenant_context(world_a.tenant), pytest.raises(ServiceError) as err:
        rules.save_rule_set(values={"name": "x", "clearance_days": "2.5"})
    assert err.value.attr == "clearance_days"
