"""The approval and publishing path at scale: a 100,000-SKU tenant's recommendations
auto-approved by the policy, the rest bulk-approved by filter, all published through the CSV
publisher (prices moved, history written), then the whole job rolled back.

    .venv/bin/python benchmarks/workflow.py [--skus 100000]

The recommendations are written directly (the reprice job that computes them is measured by
reprice_job.py); every step after that is the real service path the API and portal call.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")


def timed(label: str, fn):
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"{label:55s} {seconds:7.2f} s")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=100_000)
    args = parser.parse_args()
    import django

    django.setup()
    from django.db import transaction

    from pricing_saas.catalog.importer import import_file
    from pricing_saas.catalog.models import Product
    from pricing_saas.pricing import approvals, publishing
    from pricing_saas.pricing.models import Publication, Recommendation, RepriceJob
    from tenants.context import actor_context, tenant_context
    from tenants.services import create_tenant, delete_tenant

    n = args.skus
    rng = np.random.default_rng(0)
    tenant = create_tenant(name="Workflow benchmark", slug=f"bench-flow-{os.getpid()}")
    try:
        with tenant_context(tenant), actor_context(None, "benchmark"):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "p.csv"
                price = rng.uniform(2, 200, n).round(2)
                with open(path, "w", newline="") as out:
                    w = csv.writer(out)
                    w.writerow(["sku", "title", "category", "cost", "price"])
                    for i in range(n):
                        cost = round(price[i] * 0.6, 2)
                        w.writerow([f"S{i:06d}", f"Item {i}", f"c{i % 50}", cost, price[i]])
                import_file(kind="products", path=path)
            ids = list(Product.objects.order_by("pk").values_list("pk", "price"))
            change = rng.uniform(-0.15, 0.15, n)
            job = RepriceJob.objects.create(status="succeeded")
            with transaction.atomic():
                Recommendation.objects.bulk_create(
                    [
                        Recommendation(
                            job=job,
                            product_id=pk,
                            current_price=p0,
                            recommended_price=round(float(p0) * (1 + c), 2),
                            change=float(c),
                            profit_delta=float(abs(c)),
                            confident=True,
                            elasticity=-1.5,
                            tenant=tenant,
                        )
                        for (pk, p0), c in zip(ids, change, strict=True)
                    ],
                    batch_size=10_000,
                )
            auto, t_auto = timed(
                "auto-approve (policy: within ±5 %, confident)", lambda: approvals.auto_approve(job)
            )
            rest, t_bulk = timed(
                "bulk approve the rest by filter",
                lambda: approvals.bulk_decide(
                    approve=True, where=approvals.BulkFilter(job_id=job.pk)
                ),
            )

            def publish_all():
                publication = publishing.publish(enqueue=False)
                return publishing.run_publication(publication_id=publication.pk)

            pub, t_pub = timed("publish every approved price (CSV publisher)", publish_all)

            def rollback_all():
                publication = publishing.rollback(job=job, enqueue=False)
                return publishing.run_publication(publication_id=publication.pk)

            back, t_back = timed("roll the whole job back (publish old prices)", rollback_all)
            assert pub.published == n and back.published == n, (pub.message, back.message)
            first = Product.objects.order_by("pk").values_list("price", flat=True).first()
            assert first == ids[0][1], "rollback did not restore the price"
            print(
                f"\n{n:,} SKUs: {auto:,} auto-approved in {t_auto:.2f} s, {rest:,} bulk-approved "
                f"in {t_bulk:.2f} s; published {pub.published:,} in {t_pub:.2f} s "
                f"({n / t_pub:,.0f} changes/s); rolled back {back.published:,} in {t_back:.2f} s; "
                f"{Publication.objects.count()} publications"
            )
    finally:
        delete_tenant(tenant=tenant)


if __name__ == "__main__":
    main()
