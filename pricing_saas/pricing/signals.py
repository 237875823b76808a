"""Receivers of the catalog's signals (connected in `PricingConfig.ready()`)."""

from __future__ import annotations

from django.utils import timezone

from tenants.context import require_current_tenant

from .models import PriceChange


def shop_prices_changed(sender, changes: list, source: str = "", **kwargs) -> None:
    """A price a person changed in the shop is in force already: it enters the SKU's price
    history as an external change (published, not reversible by a job's rollback; a change
    made against the old price fails at publishing instead of overwriting it)."""
    if not changes:
        return
    tenant, now = require_current_tenant(), timezone.now()
    PriceChange.objects.bulk_create(
        [
            PriceChange(
                tenant=tenant,
                product_id=product_id,
                kind=PriceChange.Kind.EXTERNAL,
                status=PriceChange.Status.PUBLISHED,
                old_price=old,
                new_price=new,
                published_at=now,
                created_by=source[:200],
            )
            for product_id, old, new in changes
        ]
    )
