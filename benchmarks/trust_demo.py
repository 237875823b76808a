"""Trust on real data: the demo merchant's recommendations (Dunnhumby's Complete Journey, the
2,000 best sellers, the demo's rule sets) through the real path, and a ratchet test.

    .venv/bin/python benchmarks/trust_demo.py [--products 2000] [--skip 0] [--nights 10]

`--skip N` takes the products after the N best sellers: the same grocer's slower movers, a
catalog no setting was chosen on.

Builds a fresh tenant exactly as `manage.py demo` imports it (products, a year of daily sales,
derived costs and competitor prices), sets the demo's two rule sets, runs a reprice job (which
trains the demand model) and reports:
- changes with a negative expected gain by the tool's own figures (outside rule restores);
- SKUs without a usable estimate, and SKUs whose own estimate had the wrong sign (they take
  their category's elasticity);
- changes at the step limit;
- the backtest of the last 4 weeks against each SKU's recent average day (and its year's).
Then the ratchet: `--nights` consecutive nightly runs with no new data, each approving and
publishing every recommended change, and the largest cumulative change of any SKU against the
window limit (default 20 % per 28 days).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--skip", type=int, default=0, help="leave out the N best sellers")
    parser.add_argument("--nights", type=int, default=10)
    args = parser.parse_args()
    if args.products < 1 or args.skip < 0 or args.nights < 0:
        parser.error("--products must be 1 or more, --skip and --nights 0 or more")
    import django

    django.setup()
    from ml.models import Elasticity
    from ml.panel import demand_panel
    from ml.science.backtest import FAR_WORDS, MOVED_WORDS, backtest
    from ml.science.optimizer import RULES
    from pricing_saas.catalog.importer import ImportOptions, import_file
    from pricing_saas.catalog.models import Product
    from pricing_saas.portal.demo_data import complete_journey_csvs
    from pricing_saas.pricing import approvals, publishing, rules, services
    from pricing_saas.pricing.models import Recommendation
    from pricing_saas.web.errors import ConflictError
    from tenants.context import actor_context, tenant_context
    from tenants.services import create_tenant, delete_tenant

    tenant = create_tenant(
        name="Trust benchmark",
        slug=f"trust-{secrets.token_hex(4)}",
        timezone_name="America/Chicago",
    )
    try:
        with tenant_context(tenant), actor_context(None, "benchmark"):
            started = time.monotonic()
            with tempfile.TemporaryDirectory() as folder:
                complete_journey_csvs(Path(folder), products=args.products, skip=args.skip)
                for kind, name in [
                    ("products", "products.csv"),
                    ("sales", "sales.csv"),
                    ("competitor_prices", "competitor_offers.csv"),
                ]:
                    import_file(
                        kind=kind,
                        path=Path(folder) / name,
                        options=ImportOptions(skip_invalid=True),
                    )
            # the demo's rules and policy (pricing_saas/portal/management/commands/demo.py)
            rules.save_rule_set(
                values={
                    "name": "Store default",
                    "min_margin": "0.10",
                    "max_step": "0.10",
                    "ending": "0.99",
                }
            )
            rules.save_rule_set(
                values={
                    "name": "Stay near the market",
                    "scope": "category",
                    "priority": 1,
                    "scope_values": ["SOFT DRINKS", "BAG SNACKS", "FLUID MILK PRODUCTS"],
                    "max_above_competitor": "0.05",
                }
            )
            approvals.update_policy(auto_approve=True, auto_approve_max_change="0.05")
            print(
                f"imported {Product.objects.count()} products in {time.monotonic() - started:.0f} s"
            )
            started = time.monotonic()
            job = services.start_reprice(enqueue=False)
            job = services.run_reprice(job_id=job.pk)
            print(f"reprice job: {job.message} ({time.monotonic() - started:.0f} s)\n")
            recs = list(
                Recommendation.objects.filter(job=job).values_list(
                    "status",
                    "binding_rules",
                    "profit_delta",
                    "expected_revenue",
                    "expected_revenue_now",
                    "auto_approved",
                    "elasticity",
                )
            )
            n = len(recs)
            changes = [r for r in recs if r[0] in ("pending", "approved")]
            restore = lambda r: "restores_rule" in r[1]  # noqa: E731
            gain = lambda r: r[2] if r[2] is not None else r[3] - r[4]  # noqa: E731
            negative = [r for r in changes if gain(r) < -1e-9 and not restore(r)]
            restores_negative = [r for r in changes if gain(r) < -1e-9 and restore(r)]
            auto_negative = [r for r in changes if r[5] and gain(r) <= 0]
            no_estimate = [r for r in recs if "no_estimate" in r[1]]
            version = job.demand_version
            estimates = Elasticity.objects.filter(model_version=version)
            from_prior = estimates.filter(from_prior=True).count()
            at_step = [r for r in changes if "max_step" in r[1]]
            print("| measure (demo data, one run) | value |\n| --- | --- |")
            print(f"| SKUs repriced | {n} |")
            print(f"| changes recommended | {len(changes)} ({len(changes) / n:.1%} of SKUs) |")
            print(
                f"| changes with a negative expected gain, outside rule restores | "
                f"{len(negative)} ({len(negative) / max(len(changes), 1):.1%}) |"
            )
            print(f"| rule restores with a negative expected gain | {len(restores_negative)} |")
            print(f"| auto-approved changes with a gain <= 0 | {len(auto_negative)} |")
            print(
                f"| SKUs without a usable estimate (price kept) | "
                f"{len(no_estimate)} ({len(no_estimate) / n:.1%}) |"
            )
            print(
                f"| SKUs whose own estimate had the wrong sign (category's elasticity used) | "
                f"{from_prior} ({from_prior / max(estimates.count(), 1):.1%}) |"
            )
            print(
                f"| changes at the step limit | {len(at_step)} "
                f"({len(at_step) / max(len(changes), 1):.1%}) |"
            )
            min_gain = [
                r for r in recs if r[0] not in ("pending", "approved") and "min_gain" in r[1]
            ]
            print(
                "| prices kept because no move pays the minimum gain for its risk (reason "
                f"`min_gain`) | {len(min_gain)} |"
            )
            held = [r for r in recs if "competitor_hinge" in r[1]]
            raised = [r for r in held if r[0] in ("pending", "approved")]
            print(
                "| prices held at the competitor's by a possible collapse above it (changes / "
                f"kept prices) | {len(raised)} / {len(held) - len(raised)} |"
            )
            # the changes whose shown figures weigh a possible collapse above the competitor
            # (`DemandCurve.expected_units`): how many, and their shown gain against the
            # curve's own (the gain without the hinge's mixture)
            mixed = mixture_gains(version, job)
            print(
                "| changes whose shown gain weighs a possible collapse above the competitor "
                f"(their gain shown / on the curve without it, per day) | {mixed[0]} "
                f"({mixed[1]:.2f} / {mixed[2]:.2f}) |"
            )
            print(f"| demand model | {version.message} |")
            # every day's units over a shelf day's (the forecasts a published change carries and
            # the clearance floor read the curve's shelf day times it)
            lift = np.array(
                [v for v in estimates.values_list("promo_lift", flat=True) if v is not None]
            )
            print(
                "| every day's units over a shelf day's, the products' recent promotions "
                "(lowest / median / 90th percentile / 99th / highest; share above 1.1, below 1) | "
                + (
                    " / ".join(f"{v:.3f}" for v in np.quantile(lift, [0, 0.5, 0.9, 0.99, 1]))
                    + f"; {np.mean(lift > 1.1):.1%}, {np.mean(lift < 1 - 1e-9):.1%} |"
                    if len(lift)
                    else "none stored |"
                )
            )
            trained = version.metrics.get(version.trainer, {})
            ratio = trained.get("weights_ratio")
            print(
                "| the demand fit's weights (the counts' negative-binomial k; the median SKU's "
                "stated slope variance on its weights over Poisson's) | "
                + ("negative binomial" if trained.get("overdispersion_k") else "Poisson")
                + f" (k {trained.get('counts_k')}; ratio {'none' if ratio is None else ratio}) |"
            )
            panel, _ids, _stats = demand_panel()
            result = backtest(panel, holdout_days=28)
            print(
                f"| backtest, last 28 days: deviance model / recent average day / year's "
                f"average day | {result.deviance_model:.4f} / {result.deviance_recent:.4f} / "
                f"{result.deviance_average:.4f} |"
            )
            print(f"| backtest gain over the recent average day | {result.gain_over_recent:+.1%} |")
            if result.moved_rows:
                print(
                    f"| backtest, the {result.moved_rows:,} held-out SKU-days of "
                    f"{result.test_rows:,} whose price was {MOVED_WORDS}: deviance model / "
                    "without the price response; the share of it the price response explains | "
                    f"{result.deviance_model_moved:.4f} / {result.deviance_no_price_moved:.4f}; "
                    f"{result.gain_from_price_moved:+.1%} ({result.moved_interval()}) |"
                )
            if result.far_rows:
                print(
                    f"| backtest, the {result.far_rows:,} held-out SKU-days whose price was "
                    f"{FAR_WORDS}: the same | {result.deviance_model_far:.4f} / "
                    f"{result.deviance_no_price_far:.4f}; {result.gain_from_price_far:+.1%} |"
                )
            print(
                f"| backtest gain over the year's average day | {result.gain_over_average:+.1%} |"
            )

            # The ratchet: nightly runs with no new data, every change approved and published.
            approvals.update_policy(auto_approve=False)
            start = dict(Product.objects.values_list("pk", "price"))
            moved_per_night = []
            for night in range(args.nights):
                if night:
                    job = services.start_reprice(enqueue=False)
                    job = services.run_reprice(job_id=job.pk)
                pending = approvals.BulkFilter(job_id=job.pk)
                approvals.bulk_decide(approve=True, where=pending)
                try:
                    publication = publishing.publish(enqueue=False)
                    publishing.run_publication(publication_id=publication.pk)
                    moved_per_night.append(
                        publication.changes_count
                        if hasattr(publication, "changes_count")
                        else job.changed
                    )
                except ConflictError:  # nothing approved: nothing moves
                    moved_per_night.append(0)
            end = dict(Product.objects.values_list("pk", "price"))
            change = np.array([float(end[pk]) / float(start[pk]) - 1 for pk in start])
            print(f"\n| ratchet: {args.nights} nightly runs, no new data | value |")
            print("| --- | --- |")
            print(f"| changes published per night | {', '.join(map(str, moved_per_night))} |")
            print(f"| largest cumulative change of a SKU | {np.max(np.abs(change)):.1%} |")
            print(
                f"| SKUs beyond the window limit (20 % per 28 days) | "
                f"{int(np.sum(np.abs(change) > 0.20 + 0.005))} |"
            )
            print(f"| SKUs moved at all | {int(np.sum(np.abs(change) > 1e-9))} |")
            del RULES
    finally:
        delete_tenant(tenant=tenant)


def mixture_gains(version, job) -> tuple[int, float, float]:
    """The job's changes whose expected units are a hinge mixture's: their count, their summed
    gain as shown, and the same on the curve's own units (the objective the job optimised)."""
    from ml.selectors import demand_curve
    from pricing_saas.pricing.models import Recommendation

    rows = list(
        Recommendation.objects.filter(job=job, status__in=("pending", "approved"))
        .values_list(
            "product_id", "current_price", "recommended_price", "competitor_price",
            "product__category", "product__cost",
        )
    )  # fmt: skip
    if not rows:
        return 0, 0.0, 0.0
    ids, now, new, comp, cats, costs = zip(*rows, strict=True)
    now, new = np.array(now, float), np.array(new, float)
    comp = np.array([np.nan if c is None else float(c) for c in comp])
    cost = np.array([np.nan if c is None else float(c) for c in costs])
    curve, _known = demand_curve(version, ids, now, list(cats), comp)
    shown, own = curve.expected_profit(new, cost), curve.profit(new, cost)
    base = curve.profit(now, cost)
    differs = np.abs(shown - own) > 1e-9 * np.maximum(np.abs(own), 1.0)
    return (
        int(differs.sum()),
        float(np.sum(shown[differs] - base[differs])),
        float(np.sum(own[differs] - base[differs])),
    )


if __name__ == "__main__":
    main()
