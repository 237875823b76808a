"""Portal pages of the merchant's data: catalog, imports (upload, mapping, progress, report),
exports."""

from __future__ import annotations

import tempfile

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pricing_saas.web.errors import ServiceError
from pricing_saas.web.views import tenant_view
from tenants.roles import Perm

from . import services
from .exporter import export_csv, export_xlsx
from .formats import FORMATS, get_format
from .importer import IGNORE
from .models import CompetitorOffer, ImportJob, Product, SalesRecord


@tenant_view()
@require_GET
def catalog(request):
    products = Product.objects.order_by("sku")
    query = request.GET.get("q", "").strip()[:100]
    if query:
        products = products.filter(title__icontains=query) | products.filter(sku__icontains=query)
    page = Paginator(products, 50).get_page(request.GET.get("page"))
    counts = {
        "products": Product.objects.count(),
        "sales": SalesRecord.objects.count(),
        "competitor_prices": CompetitorOffer.objects.count(),
    }
    return render(request, "catalog/catalog.html", {"page": page, "q": query, "counts": counts})


@tenant_view(post=Perm.IMPORT_DATA)
@require_http_methods(["GET", "POST"])
def imports(request):
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        upload = request.FILES.get("file")
        if upload is None:
            messages.error(request, "Choose a file to upload.")
            return redirect("catalog:imports")
        try:
            job = services.create_import_job(
                kind=kind,
                upload=upload,
                options=services.options_from(request.POST),
                user=request.user,
            )
        except ServiceError as exc:
            messages.error(request, exc.detail)
            return redirect("catalog:imports")
        return redirect("catalog:import_detail", pk=job.pk)
    jobs = ImportJob.objects.order_by("-created_at")[:100]
    return render(request, "catalog/imports.html", {"jobs": jobs, "kinds": FORMATS})


@tenant_view()
@require_GET
def import_detail(request, pk: int):
    job = get_object_or_404(ImportJob.objects.all(), pk=pk)
    targets = get_format(job.kind).names
    return render(
        request,
        "catalog/import_detail.html",
        {
            "job": job,
            "live": services.job_progress(job),
            "targets": targets,
            "ignore": IGNORE,
            "mapping_rows": [(h, _guess(h, targets)) for h in job.headers],
        },
    )


def _guess(header: str, targets: list[str]) -> str:
    name = header.strip().lower()
    return name if name in targets else ""


@tenant_view()
@require_GET
def import_progress(request, pk: int):
    """The htmx fragment polled while an import runs."""
    job = get_object_or_404(ImportJob.objects.all(), pk=pk)
    response = render(
        request, "catalog/_progress.html", {"job": job, "live": services.job_progress(job)}
    )
    if job.is_finished and request.htmx:
        response["HX-Refresh"] = "true"  # show the full report
    return response


@tenant_view(Perm.IMPORT_DATA)
@require_POST
def import_mapping(request, pk: int):
    job = get_object_or_404(ImportJob.objects.all(), pk=pk)
    column_map = {h: request.POST.get(f"map_{i}", "") for i, h in enumerate(job.headers)}
    column_map = {h: (t or IGNORE) for h, t in column_map.items()}
    try:
        services.set_column_map(job=job, column_map=column_map)
    except ServiceError as exc:
        messages.error(request, exc.detail)
    return redirect("catalog:import_detail", pk=job.pk)


@tenant_view()
@require_GET
def export(request, kind: str, fmt: str):
    if kind not in FORMATS or fmt not in ("csv", "xlsx"):
        raise Http404("unknown export")
    if fmt == "csv":
        handle = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 (FileResponse closes it)
        export_csv(kind, handle)
        handle.seek(0)
        return FileResponse(
            handle, as_attachment=True, filename=f"{request.tenant.slug}-{kind}.csv"
        )
    handle = tempfile.NamedTemporaryFile(suffix=".xlsx")  # noqa: SIM115 (FileResponse closes it)
    export_xlsx(kind, handle.name)
    handle.seek(0)
    return FileResponse(handle, as_attachment=True, filename=f"{request.tenant.slug}-{kind}.xlsx")
