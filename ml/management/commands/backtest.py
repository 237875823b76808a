"""`python manage.py backtest SLUG [--holdout-days 28]`: the demand model on the tenant's own
history, fitted without the last weeks and scored on them."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error


class Command(BaseCommand):
    help = "Backtest the demand model on a tenant's own sales history."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--holdout-days", type=int, default=28)

    def handle(self, *args, slug: str, holdout_days: int, **options):
        from ml.panel import demand_panel
        from ml.science.backtest import FAR_WORDS, MOVED_WORDS, backtest

        tenant = tenant_or_error(slug)
        with tenant_context(tenant):
            panel, _ids, _stats = demand_panel()
        if panel is None:
            raise CommandError(f"{slug} has no sales history to backtest")
        try:
            result = backtest(panel, holdout_days=holdout_days)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        w = self.stdout.write
        w(
            f"trained on {result.train_days} days, held out the last {result.test_days} "
            f"({result.test_rows:,} SKU-days of {result.skus:,} SKUs)"
        )
        w(
            f"mean Poisson deviance per SKU-day: model {result.deviance_model:.4f}, "
            f"without the price response {result.deviance_no_price:.4f}, "
            f"each SKU's average day {result.deviance_average:.4f}, "
            f"its average day of the last 4 weeks {result.deviance_recent:.4f}"
        )
        w(
            f"deviance explained vs the average day: {result.gain_over_average:+.1%}; "
            f"vs the recent average day: {result.gain_over_recent:+.1%}; "
            f"by the price response: {result.gain_from_price:+.1%}"
        )
        if result.moved_rows:
            w(
                f"on the {result.moved_rows:,} held-out SKU-days whose price was {MOVED_WORDS}: "
                f"model {result.deviance_model_moved:.4f}, without the price response "
                f"{result.deviance_no_price_moved:.4f}; deviance explained by the price "
                f"response {result.gain_from_price_moved:+.1%} ({result.moved_interval()})"
            )
        else:
            w(
                f"no held-out day's price was {MOVED_WORDS}"
                + (
                    ": the price response is judged only on the days further off, below"
                    if result.far_rows
                    else ": the price response is not judged on moved prices"
                )
            )
        if result.far_rows:
            w(
                f"on the {result.far_rows:,} held-out SKU-days whose price was {FAR_WORDS}: "
                f"model {result.deviance_model_far:.4f}, without the price response "
                f"{result.deviance_no_price_far:.4f}; deviance explained by the price response "
                f"{result.gain_from_price_far:+.1%}"
            )
        w(
            f"mean absolute error: model {result.mae_model:.3f}, average day "
            f"{result.mae_average:.3f} units; held-out units {result.units_actual:,.0f}, "
            f"forecast {result.units_forecast:,.0f}"
        )
