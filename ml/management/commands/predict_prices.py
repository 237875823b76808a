import csv
import sys

from django.core.management.base import BaseCommand, CommandError

from ml import selectors
from ml.science.text_price import product_text
from pricing_saas.catalog.formats import normalise_header
from pricing_saas.catalog.importer import ImportFailed, sniff
from pricing_saas.web.errors import ServiceError
from tenants.context import tenant_context
from tenants.management.commands import tenant_or_error

KNOWN = {"sku", "title", "description", "category", "brand", "price", "cost", "currency", "stock"}


class Command(BaseCommand):
    help = (
        "Reference prices for products in the products CSV format (price column not needed): "
        "CSV on stdout with sku, predicted_price, low, high."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("file")

    def handle(self, *args, slug, file, **options):
        tenant = tenant_or_error(slug)
        try:
            sniffed = sniff(file, "products")
        except FileNotFoundError as exc:
            raise CommandError(f"no such file: {file}") from exc
        except ImportFailed as exc:
            raise CommandError(str(exc.result.errors[0])) from exc
        with open(file, encoding=sniffed.python_encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=sniffed.delimiter)
            header = [normalise_header(h) for h in next(reader)]
            if "sku" not in header or "title" not in header:
                raise CommandError("the file needs at least the columns sku and title")
            rows = [dict(zip(header, row, strict=False)) for row in reader if any(row)]
        texts = [
            product_text(
                r.get("title", ""),
                r.get("description", ""),
                r.get("brand", ""),
                r.get("category", ""),
                {k: v for k, v in r.items() if k not in KNOWN},
            )
            for r in rows
        ]
        with tenant_context(tenant):
            try:
                version, prediction = selectors.predict_texts(texts)
            except ServiceError as exc:
                raise CommandError(exc.detail) from exc
        out = csv.writer(sys.stdout if self.stdout._out is sys.stdout else self.stdout._out)
        out.writerow(["sku", "predicted_price", "low", "high"])
        for row, p, lo, hi in zip(
            rows, prediction.price, prediction.low, prediction.high, strict=True
        ):
            out.writerow([row["sku"], f"{p:.2f}", f"{lo:.2f}", f"{hi:.2f}"])
        self.stderr.write(f"{len(rows)} predictions by {version}")
