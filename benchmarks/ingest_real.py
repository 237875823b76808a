"""Import a real merchant: Dunnhumby's Complete Journey converted to the canonical formats
(benchmarks/completejourney_to_csv.py), through `import_csv`, timed.

    .venv/bin/pip install -r requirements/bench.txt
    .venv/bin/python benchmarks/ingest_real.py [--products N]

Every product with a sale by default (`--products N`: the N best sellers, for a quick run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")

from completejourney_to_csv import convert  # noqa: E402
from ingest import max_rss_mb_of, run_child  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=None, help="the N best sellers only")
    args = parser.parse_args()
    import django

    django.setup()
    py = sys.executable
    slug = f"bench-cj-{os.getpid()}"
    run_child([py, "manage.py", "create_tenant", slug, "--name", "Complete Journey grocer"])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            stats = convert(Path(tmp), products=args.products)
            print(f"converted in {time.perf_counter() - started:.1f}s: {stats}")
            for kind in ("products", "sales"):
                path = Path(tmp) / f"{kind}.csv"
                seconds, rss, out = max_rss_mb_of(
                    [py, "manage.py", "import_csv", slug, kind, str(path)]
                )
                with open(path) as handle:
                    rows = sum(1 for _ in handle) - 1
                print(
                    f"import_csv {kind:8s}: {rows:>9,} rows in {seconds:6.2f}s "
                    f"({rows / seconds:,.0f} rows/s, peak {rss:.0f} MB) -> {out}"
                )
    finally:
        from tenants.models import Tenant
        from tenants.services import delete_tenant

        delete_tenant(tenant=Tenant.objects.get(slug=slug))


if __name__ == "__main__":
    main()
