"""A/B price tests from the command line (operators and tests).

manage.py experiment start SLUG --name NAME [--category C ...] [--skus-file F] --days N
    [--share 0.5] [--seed S] [--start YYYY-MM-DD] [--metric profit|revenue|units]
manage.py experiment assignments SLUG ID      # CSV: sku,arm,price_before,price_test
manage.py experiment report SLUG ID [--json]
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pricing_saas.experiments import services
from pricing_saas.experiments.models import Experiment
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--start: not a date (YYYY-MM-DD): {text!r}") from exc


class Command(BaseCommand):
    help = "Start an A/B price test, list its assignments, or report its result."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        start = sub.add_parser("start")
        start.add_argument("slug")
        start.add_argument("--name", required=True)
        start.add_argument("--category", action="append", default=[])
        start.add_argument("--skus-file", type=Path)
        start.add_argument("--days", type=int, required=True)
        start.add_argument("--share", type=float, default=0.5)
        start.add_argument("--seed", type=int, default=0)
        start.add_argument("--start", type=_date)
        start.add_argument("--metric", default="profit")
        start.add_argument(
            "--arms-file",
            type=Path,
            help="a test that already ran (with a past --start): CSV sku,arm[,price_test] of "
            "its own assignment, instead of a randomisation here",
        )
        for name in ("assignments", "report"):
            each = sub.add_parser(name)
            each.add_argument("slug")
            each.add_argument("id", type=int)
            if name == "report":
                each.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, action, slug, **options):
        tenant = tenant_or_error(slug)
        with tenant_context(tenant):
            try:
                getattr(self, f"_{action}")(**options)
            except ServiceError as exc:
                field = f"--{exc.attr.replace('_', '-')}: " if exc.attr else ""
                raise CommandError(f"{field}{exc.detail}") from exc

    def _start(
        self, *, name, category, skus_file, days, share, seed, start, metric, arms_file, **_
    ):
        skus = None
        arms = None
        if arms_file is not None:
            try:
                with open(arms_file, encoding="utf-8-sig", newline="") as handle:
                    reader = csv.DictReader(handle)
                    missing = {"sku", "arm"} - set(reader.fieldnames or [])
                    if missing:
                        raise CommandError(
                            f"--arms-file: the header needs sku and arm (missing: "
                            f"{', '.join(sorted(missing))})"
                        )
                    arms = [dict(row) for row in reader]
            except (OSError, UnicodeDecodeError, csv.Error) as exc:
                raise CommandError(f"--arms-file: cannot read {arms_file}: {exc}") from exc
        if skus_file is not None:
            try:
                text = skus_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"--skus-file: cannot read {skus_file}: {exc}") from exc
            skus = [line.split(",")[0].strip() for line in text.splitlines()]
            skus = [s for s in skus if s and s.lower() != "sku"]
        experiment = services.start_experiment(
            name=name,
            days=days,
            categories=category or None,
            skus=skus,
            share=share,
            seed=seed,
            start=start,
            metric=metric,
            arms=arms,
        )
        self.stdout.write(str(experiment.pk))

    def _experiment(self, pk: int) -> Experiment:
        experiment = Experiment.objects.filter(pk=pk).first()
        if experiment is None:
            raise CommandError(f"id: no experiment {pk} in this tenant")
        return experiment

    def _assignments(self, *, id, **_):
        out = csv.writer(self.stdout)
        out.writerow(["sku", "arm", "price_before", "price_test"])
        for sku, arm, before, test in services.assignments(self._experiment(id)):
            out.writerow([sku, arm, f"{before:.2f}", f"{test:.2f}"])

    def _report(self, *, id, as_json: bool = False, **_):
        experiment = self._experiment(id)
        result = services.report(experiment=experiment)
        if as_json:
            self.stdout.write(json.dumps(dict(experiment.result), default=str))
            return
        self.stdout.write(
            f"{experiment.name}: {result.verdict}; lift {result.lift_per_sku_day:.4f} "
            f"{experiment.metric} per SKU-day ({result.lift_pct:+.1f} %), 95 % interval "
            f"{result.ci_low:.4f} to {result.ci_high:.4f}; {result.days_observed} of "
            f"{result.planned_days} days, {result.n_treatment} treatment / "
            f"{result.n_control} control SKUs"
            + ("" if experiment.randomised else " (not randomised: the merchant's own arms)")
        )
