"""Every script in benchmarks/ runs to the end at a tiny size, so none can rot unnoticed.

Each script runs as its own process, as a person would run it, with arguments that make it
small (the figures it prints mean nothing at this size). Scripts that touch the database use the
test database, as the application role, with the owner role known (DATABASE_URL and
DATABASE_OWNER_URL), so a script that needs the owner's rights fails here as it would on a fresh
clone. A script whose input is missing from this machine (the data sets in ../shared/data) is
skipped with that reason; everything else is expected to run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
SHARED_DATA = ROOT.parent / "shared" / "data"
TIMEOUT_S = 300  # per script; together they take about 80 s of CPU time


@dataclass(frozen=True)
class Smoke:
    args: str = ""  # split on spaces; {tmp} is a scratch folder
    expect: tuple[str, ...] = ()  # each must appear in what the script prints
    db: bool = False  # reads or writes the database
    data: str | None = None  # a file of ../shared/data it reads


SCRIPTS = {
    "champion_challenger.py": Smoke(
        args="--runs 2 --skus 20 --days 90",
        expect=("| case | promoted by strict <", "| tie: the model in force"),
    ),
    "cigar_elasticity.py": Smoke(
        expect=("pooled elasticity", "reference (state and year fixed effects"),
        data="cigar_panel.csv",
    ),
    "competitor_level.py": Smoke(
        args="--series 500 --tenants 3",
        expect=(
            "500 feeds of 8 readings",
            "| 30% | 0.12 |",
            "| calm and wild (",
            "| ten alike (",
            "| tenants of sellers alike |",
        ),
    ),
    "completejourney_to_csv.py": Smoke(
        args="{tmp} --products 20",
        expect=("products_written: 20", "converted in"),
    ),
    "connector_sync.py": Smoke(
        args="--products 10 --variants 2 --orders 30 --lines 2 --changes 15",
        expect=(
            "| pull through cursor pages: 20 products, 60 order lines",
            "| pull through bulk operations (",
            "| push: 15 price changes (15 published, 0 lost, 0 sent twice)",
        ),
        db=True,
    ),
    "slope_errors.py": Smoke(
        args="--skus 12 --days 60 --seeds 0 --traps --trap anchor_slope=1:2 --forms linear,logit",
        expect=("| form | third of true slopes |", "| linear | all |", "| logit | steepest |"),
    ),
    "decision_decomposition.py": Smoke(
        args="--skus 12 --days 60 --seeds 0 --reports orders --ceiling --traps "
        "--anchored-share 0.25 --trap overdispersion=1.2 --trap anchor_slope=1:2 "
        "--trap cost_share=0.8:0.9 "
        "--competitor-every 1 --price-every 20 --volume 0.5 --variants "
        "per-sku:loss_budget=none,gain_z=1;own:own_hinges=1;normal:normal_hinges=1 "
        "--dump {tmp}/skus",
        expect=(
            "25% of SKUs anchored to the competitor, overdispersion 1.2, anchor_slope "
            "(1.0, 2.0), cost_share (0.8, 0.9), own prices changed every 20 days on average, "
            "units a day x 0.5",
            "interval coverage |",
            "| constant+linear+logit | 0 | orders |",
            "(a) evidence range",
            "| orders | per-sku |",
            "| orders | own |",
            "| orders | normal |",
            "| orders | ceiling: true slope and bend |",
            "| orders | ceiling: true slope, bend and hinge |",
            "expected by the product's own loss chances |",
            "| orders | (0.06, 1] |",
            "each market's SKUs written to",
        ),
        db=True,
    ),
    "decision_quality.py": Smoke(
        args="--skus 12 --days 60 --seeds 0 --reports orders",
        expect=("| constant+linear+logit | 0 |", "mean captured share (orders)"),
        db=True,
    ),
    "experiment_calibration.py": Smoke(
        args="--experiments 6 --skus 30 --null-experiments 6",
        expect=("coverage of 95 % CI", "| 5 % | 6 |", "false-positive rate under 5 looks"),
    ),
    "gpu_train.py": Smoke(  # its CPU path: the script, not a measurement
        args="--device cpu --max-products 220 --max-train 24 --epochs 1 --batch-size 8 "
        "--patience 1 --out {tmp}/gpu.json",
        expect=('"rmsle"', '"finetune"', '"chosen"', '"patience": 1'),
        data="amazon_in_products.csv",
    ),
    "ingest.py": Smoke(
        args="--rows 500 --skus 50",
        expect=(
            "raw psql \\copy into a bare table",
            "ratio import_csv / raw copy",
            "peak memory of import_csv process",
        ),
        db=True,
    ),
    "ingest_real.py": Smoke(
        args="--products 20",
        expect=("import_csv products:        20 rows", "import_csv sales"),
        db=True,
    ),
    "fairness.py": Smoke(
        args="--small 3 --small-skus 10 --big 1 --big-skus 40 --days 20 --workers 2 --baseline "
        "--partition-min-skus 20 --block-skus 20 --in-flight 1",
        expect=("| round | tenants |", "| all tenants | 1 big | 40 | 2 |", "| small tenants alone"),
        db=True,
    ),
    "kpi_refresh.py": Smoke(
        args="--skus 50 --days 14",
        expect=("| first refresh (refresh_kpis) |", "x plain INSERT ... SELECT"),
        db=True,
    ),
    "tenant_keys.py": Smoke(
        args="--rows 2000 --tenants 5",
        expect=(
            "| migration: composite foreign key added and checked |",
            "| then the migration: index found, swap, key left alone |",
        ),
        db=True,
    ),
    "load.py": Smoke(
        args="--tenants 2 --skus 20 --days 20 --users 2 --seconds 5",
        expect=("| users | RLS on: req/s |", "failures: 0"),
        db=True,
    ),
    "optimizer_speed.py": Smoke(
        args="--skus 2000 --loop-sample 200",
        expect=("per-SKU Python loop", "vectorised grid", "with the risk budget (default)"),
    ),
    "partitioned_scale.py": Smoke(
        args="--skus 60 --days 30 --workers 1 --block 25 --reprice-block 40",
        expect=("1 worker host(s): fit", "| worker hosts | demand fit (s) |", "projection to"),
        db=True,
    ),
    "reference_prices_demo.py": Smoke(
        args="--products 60 --seeds 0",
        expect=("| before |", "| after |", "| product | sells at | before | after |"),
    ),
    "reprice_job.py": Smoke(
        args="--skus 60 --days 7 --competitors 2 --readings 5 --stale-statistics",
        expect=(
            "import sales",
            "600 competitor readings",
            "reprice job incl. training the demand model",
            "reprice job with the demand model in force",
        ),
        db=True,
    ),
    "schemathesis_run.py": Smoke(
        args="--max-examples 1 --phases examples,fuzzing --roles viewer",
        expect=(
            "| operations tested | ",
            "| server errors | 0 |",
            "| response-schema violations | 0 |",
            "| undocumented status codes | 0 |",
        ),
        db=True,
    ),
    "text_price_accuracy.py": Smoke(
        args="--trainers baseline --max-products 200",
        expect=("200 rows", "| baseline |", "| median |"),
        data="amazon_in_products.csv",
    ),
    "text_price_throughput.py": Smoke(
        args="--train-samples 6 --infer-samples 4 --batch-size 2",
        expect=("reference training", "our training", "reference inference", "our inference"),
        data="amazon_in_products.csv",
    ),
    "trust_demo.py": Smoke(
        args="--products 30 --skip 100 --nights 2",
        expect=(
            "| SKUs repriced | 30 |",
            "| ratchet: 2 nightly runs, no new data | value |",
            "whose price was over 0.05 and at most 0.25 off its typical price",
        ),
        db=True,
    ),
    "workflow.py": Smoke(
        args="--skus 50",
        expect=("publish every approved price", "50 SKUs:"),
        db=True,
    ),
}


# Further runs of a script, in another of its modes: name -> (script, its tiny run)
RUNS = {name: (name, smoke) for name, smoke in SCRIPTS.items()} | {
    "ingest.py --kind competitor_prices": (
        "ingest.py",
        Smoke(
            args="--rows 500 --skus 50 --kind competitor_prices",
            expect=(
                "ratio import_csv / raw copy",
                "import_csv of 1,000 new onto them",
                "merge_competitor_spellings        :",
            ),
            db=True,
        ),
    ),
}


def test_every_benchmark_has_a_smoke_run():
    """A new script in benchmarks/ gets its tiny run here, or this fails."""
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(SCRIPTS)


def _url(user: str, password: str | None, s: dict) -> str:
    """A postgres:// URL for `user` on the database the tests run against."""
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    host = s["HOST"] or "localhost"
    if host.startswith("/"):
        return f"postgres://{auth}@{quote(host, safe='')}/{s['NAME']}"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"


@pytest.fixture
def test_database_env(request) -> dict:
    """DATABASE_URL and DATABASE_OWNER_URL of the test database, for a child process."""
    request.getfixturevalue("transactional_db")  # created, migrated, and flushed afterwards
    from django.conf import settings
    from django.db import connection

    s = connection.settings_dict
    env = {"DATABASE_URL": _url(s["USER"], s.get("PASSWORD"), s)}
    if settings.DATABASE_OWNER:
        owner = settings.DATABASE_OWNER
        env["DATABASE_OWNER_URL"] = _url(owner["USER"], owner.get("PASSWORD"), s)
    return env


@pytest.mark.parametrize("run", sorted(RUNS))
def test_benchmark_runs_at_a_tiny_size(run, tmp_path, request):
    script, smoke = RUNS[run]
    if smoke.data and not (SHARED_DATA / smoke.data).is_file():
        pytest.skip(f"{script} reads {SHARED_DATA / smoke.data}, which this machine lacks")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pricing_saas.settings.test",
        "PYTHONWARNINGS": "ignore",
    }
    if smoke.db:
        env.update(request.getfixturevalue("test_database_env"))
    args = [a.format(tmp=tmp_path) for a in smoke.args.split()]
    try:
        proc = subprocess.run(
            [sys.executable, str(BENCHMARKS / script), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} ran past {TIMEOUT_S} s:\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for text in smoke.expect:
        assert text in proc.stdout, f"{script} did not print {text!r}:\n{proc.stdout[-3000:]}"
