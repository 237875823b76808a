import csv
import sys

from django.core.management.base import BaseCommand, CommandError

from pricing_saas.pricing.models import Recommendation, RepriceJob
from pricing_saas.web.spreadsheet import safe_cell
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error

COLUMNS = [
    "sku", "current_price", "recommended_price", "elasticity", "elasticity_low",
    "elasticity_high", "expected_units_now", "expected_units", "expected_revenue_now",
    "expected_revenue", "expected_profit_now", "expected_profit", "binding_rules", "status",
    "explanation", "loss_chance", "promo_lift", "level_carried", "position_then", "position_now",
]  # fmt: skip


def _round(value, digits):
    return None if value is None else round(value, digits)


class Command(BaseCommand):
    help = "The latest reprice job's recommendations as CSV on stdout."

    def add_arguments(self, parser):
        parser.add_argument("slug")

    def handle(self, *args, slug, **options):
        tenant = tenant_or_error(slug)
        with tenant_context(tenant):
            succeeded = RepriceJob.objects.filter(status=RepriceJob.Status.SUCCEEDED)
            job = succeeded.order_by("-finished_at").first()
            if job is None:
                raise CommandError("no finished reprice job: run `manage.py reprice SLUG --sync`")
            rows = (
                Recommendation.objects.filter(job=job)
                .select_related("product")
                .order_by("product__sku")
            )
            out = csv.writer(sys.stdout if self.stdout._out is sys.stdout else self.stdout._out)
            out.writerow(COLUMNS)
            for r in rows.iterator(chunk_size=5000):
                values = (
                    r.product.sku, r.current_price, r.recommended_price,
                    _round(r.elasticity, 4), _round(r.elasticity_low, 4),
                    _round(r.elasticity_high, 4), _round(r.expected_units_now, 4),
                    _round(r.expected_units, 4), _round(r.expected_revenue_now, 2),
                    _round(r.expected_revenue, 2), _round(r.expected_profit_now, 2),
                    _round(r.expected_profit, 2), " ".join(r.binding_rules), r.status,
                    r.explanation, _round(r.loss_chance, 4), _round(r.promo_lift, 4),
                    _round(r.level_carried, 4), _round(r.position_then, 4),
                    _round(r.position_now, 4),
                )  # fmt: skip
                out.writerow([safe_cell("" if v is None else str(v)) for v in values])
