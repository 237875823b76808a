"""Daily KPI facts: one row per product and day with sales, derived from the sales, the
product's cost and the competitor prices by `services.refresh_kpis` (never written otherwise).

Category and tenant figures are sums of these rows grouped at read time (`selectors`): a
category rollup table would have to follow every product's category change, and the grouped
read is fast enough (benchmarks/RESULTS.md, "KPI refresh").
"""

from __future__ import annotations

from django.db import models

from tenants.models import Tenant, TenantOwned


class DailyKpi(TenantOwned):
    """Units, revenue and gross profit of one product on one day (all channels together), and
    the lowest competitor price in force that day.

    The natural key is the primary key, as for SalesRecord: one index instead of a surrogate id
    plus a unique constraint, and no database FK (a refresh writes up to millions of rows; row
    level security still forces tenant_id, delete_tenant() and the ORM's cascade from Product
    remove the rows).
    """

    pk = models.CompositePrimaryKey("tenant", "product", "date")
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+"
    )
    product = models.ForeignKey(
        "catalog.Product",
        on_delete=models.CASCADE,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    date = models.DateField()  # the tenant's local day, as SalesRecord.date
    units = models.IntegerField()
    revenue = models.DecimalField(max_digits=18, decimal_places=4)
    # The product's cost when the row was computed (profit used it): a changed cost is found by
    # comparing it with the product's (services.products_with_changed_cost).
    unit_cost = models.DecimalField(max_digits=14, decimal_places=4, null=True)
    cost_known = models.BooleanField()
    # The cost is an estimate (the product's attributes["cost_source"] starts with "derived"),
    # not the merchant's own figure: profit and margin built on it are labelled as such.
    cost_derived = models.BooleanField()
    profit = models.DecimalField(max_digits=18, decimal_places=4, null=True)  # null: no cost
    competitor_price = models.DecimalField(max_digits=14, decimal_places=4, null=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "date"], name="dailykpi_tenant_date_idx")]

    def __str__(self) -> str:
        return f"{self.product_id} {self.date}: {self.units} units, {self.revenue}"
