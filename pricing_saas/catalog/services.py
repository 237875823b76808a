"""Writes of the catalog app: import jobs (upload, column mapping, run) and JSON bulk upserts.

Every file import has an ImportJob, its history row: an upload (portal or API) is stored and
run by the `catalog.run_import` task (`create_import_job`, `run_import_job`); a file on this
machine (the `import_csv` command) is run at once in the caller's process (`import_local_file`).
Both end the same way (`_execute`)."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from pricing_saas.web.errors import NotFoundError, ServiceError
from tenants.context import require_current_tenant
from tenants.files import dated_files, delete_unnamed

from .files import local_file
from .formats import FORMATS, get_format
from .importer import (
    IGNORE,
    ImportFailed,
    ImportOptions,
    ImportResult,
    map_headers,
    sniff,
    xlsx_to_csv,
)
from .models import ImportJob

logger = logging.getLogger(__name__)

ALLOWED_SUFFIXES = {".csv", ".txt", ".tsv", ".xlsx"}
MAX_BULK_ROWS = 10_000
MAX_UPLOAD_BYTES = 2 * 1024**3


def options_from(data: dict) -> ImportOptions:
    def flag(name: str) -> bool:
        value = data.get(name, False)
        return value in (True, "true", "True", "1", "on", "yes", 1)

    return ImportOptions(
        decimal_comma=flag("decimal_comma"),
        create_missing_products=flag("create_missing_products"),
        skip_invalid=flag("skip_invalid"),
        column_map=dict(data.get("column_map") or {}),
    )


def _options_dict(options: ImportOptions) -> dict:
    return {
        "decimal_comma": options.decimal_comma,
        "create_missing_products": options.create_missing_products,
        "skip_invalid": options.skip_invalid,
    }


def _errors_json(result: ImportResult) -> list[dict]:
    return [e.as_dict() for e in result.errors]


@transaction.atomic
def create_import_job(
    *,
    kind: str,
    upload: UploadedFile,
    options: ImportOptions,
    user=None,
    source: str = "upload",
) -> ImportJob:
    """Store an uploaded file and queue its import, or ask for a column mapping first."""
    _check_kind(kind)
    suffix = Path(upload.name or "").suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise ServiceError(
            f"unsupported file type {suffix or '(none)'}: upload .csv or .xlsx",
            code="unsupported_file",
            attr="file",
        )
    if upload.size == 0:
        raise ServiceError("the file is empty", code="empty_file", attr="file")
    if upload.size > MAX_UPLOAD_BYTES:
        raise ServiceError("the file is larger than 2 GB", code="too_large", attr="file")
    job = _new_job(kind=kind, name=upload.name or "", options=options, user=user, source=source)
    job.file.save(f"{job.pk}{suffix}", upload, save=False)
    try:
        _inspect(job, options)
        job.save()
    except BaseException:
        # The row rolls back with this transaction; the file on disk would not.
        _discard_file(job)
        raise
    if job.status == ImportJob.Status.QUEUED:
        _enqueue(job)
    return job


def _discard_file(job: ImportJob) -> None:
    """Delete a failed import's stored upload: nothing reads it again (the row keeps the
    report and the file's name), so it would only fill media/imports/."""
    if job.file:
        job.file.delete(save=False)


def import_local_file(
    *, kind: str, path: str | Path, options: ImportOptions, user=None, source: str = "command"
) -> ImportJob:
    """Import a file on this machine now, in this process (the `import_csv` command): a job row
    like an upload's, claimed and run here instead of by a worker. Returns the job finished,
    succeeded or failed with its report (a failed import wrote nothing)."""
    _check_kind(kind)
    if not Path(path).is_file():
        raise NotFoundError(f"no such file: {path}", attr="file")
    path = Path(path)
    job = _new_job(kind=kind, name=path.name, options=options, user=user, source=source)
    job, _ = ImportJob.claim(job.pk)
    _execute(job, path=path)
    return job


def _check_kind(kind: str) -> None:
    if kind not in FORMATS:
        raise ServiceError(
            f"unknown kind {kind!r}: use one of {', '.join(FORMATS)}",
            code="invalid_choice",
            attr="kind",
        )


def _new_job(*, kind: str, name: str, options: ImportOptions, user, source: str) -> ImportJob:
    from tenants import audit

    job = ImportJob.objects.create(
        tenant=require_current_tenant(),
        kind=kind,
        source=source,
        original_name=name[:255],
        options=_options_dict(options),
        column_map=options.column_map,
        created_by=user,
        status=ImportJob.Status.QUEUED,
    )
    audit.record(
        "import.queued", target=job, summary=f"{kind} import of {name[:200] or 'rows'} ({source})"
    )
    return job


def _readable_path(path: Path, kind: str) -> tuple[Path, Path | None]:
    """The stored file at `path` as a CSV path (XLSX is converted to a sibling CSV once)."""
    if path.suffix.lower() == ".xlsx":
        converted = path.with_suffix(".converted.csv")
        if not converted.exists():
            xlsx_to_csv(path, converted, kind)
        return converted, converted
    return path, None


PREVIEW_ROWS = 10


def _inspect(job: ImportJob, options: ImportOptions) -> None:
    """Read the header and a preview; park the job for mapping if the header does not fit.
    Runs in the web request: a workbook is read only as far as the header and the preview
    (the whole sheet is converted by the import task)."""
    with local_file(job.file) as path:
        head = path.with_suffix(".head.csv") if path.suffix.lower() == ".xlsx" else None
        try:
            if head is not None:
                xlsx_to_csv(path, head, job.kind, max_rows=PREVIEW_ROWS + 1)
            sniffed = sniff(head or path, job.kind, preview_rows=PREVIEW_ROWS)
        except ImportFailed as exc:
            _finish(job, exc.result, failed=True)
            return
        finally:
            if head is not None:
                head.unlink(missing_ok=True)
    job.headers = sniffed.headers
    job.preview = sniffed.preview
    try:
        map_headers(get_format(job.kind), sniffed.headers, options.column_map)
    except ImportFailed as exc:
        job.status = ImportJob.Status.NEEDS_MAPPING
        job.errors = _errors_json(exc.result)
        job.error_count = exc.result.error_count
        job.message = "Map the file's columns to the expected ones."


def _enqueue(job: ImportJob) -> None:
    from .tasks import run_import

    tenant_id, job_id = job.tenant_id, job.pk
    transaction.on_commit(lambda: run_import.delay(tenant_id, job_id))


@transaction.atomic
def set_column_map(*, job: ImportJob, column_map: dict[str, str]) -> ImportJob:
    job = ImportJob.objects.select_for_update().get(pk=job.pk)
    if job.status != ImportJob.Status.NEEDS_MAPPING:
        raise ServiceError("this import is not waiting for a column mapping", code="invalid_state")
    allowed = set(get_format(job.kind).names) | {IGNORE, ""}
    for header, target in column_map.items():
        if header not in job.headers:
            raise ServiceError(
                f"the file has no column {header!r}", code="invalid", attr="column_map"
            )
        if target not in allowed:
            raise ServiceError(
                f"unknown target column {target!r} for {header!r}",
                code="invalid",
                attr="column_map",
            )
    try:
        map_headers(get_format(job.kind), job.headers, column_map)
    except ImportFailed as exc:
        job.errors = _errors_json(exc.result)
        job.error_count = exc.result.error_count
        job.save(update_fields=["errors", "error_count"])
        raise ServiceError(
            str(exc.result.errors[0]), code="invalid_mapping", attr="column_map"
        ) from exc
    job.column_map = column_map
    job.status = ImportJob.Status.QUEUED
    job.errors, job.error_count, job.message = [], 0, ""
    job.save()
    _enqueue(job)
    return job


def progress_key(job: ImportJob) -> str:
    # With the tenant: an id is unique per tenant in the database's keys (docs/citus.md).
    return f"import-progress:{job.tenant_id}:{job.pk}"


def job_progress(job: ImportJob) -> dict:
    """Phase and share done: live from the cache while running, else from the job row."""
    if job.status == ImportJob.Status.RUNNING:
        live = cache.get(progress_key(job))
        if live:
            return live
    return {"phase": job.phase or job.status, "progress": job.progress}


def run_import_job(*, job_id: int) -> ImportJob | None:
    """Run a queued import (idempotent: a job that is not queued is left alone). One left
    running by a worker that died is run again when its task is redelivered: the import writes
    in one transaction (the dead run wrote nothing) and its upload is still stored; unless a
    later import of the same kind has succeeded since (running the older file again would put
    back what the newer one replaced): then it is marked lost, to be uploaded again if wanted."""
    earlier = ImportJob.objects.filter(pk=job_id).values_list("kind", "created_at").first()
    superseded = earlier is not None and (
        ImportJob.objects.filter(
            kind=earlier[0], status=ImportJob.Status.SUCCEEDED, created_at__gt=earlier[1]
        ).exists()
    )
    job, claimed = ImportJob.claim(job_id, reclaim_stale=not superseded)
    if not claimed:
        return job
    _execute(job)
    return job


def _execute(job: ImportJob, *, path: Path | None = None) -> None:
    """Run a claimed job's import, of `path` or else of its stored upload, with the options
    the job records, and end the job with the importer's report. A crash fails the job and
    is raised."""
    from .importer import import_file

    def report(phase: str, share: float) -> None:
        cache.set(progress_key(job), {"phase": phase, "progress": round(share, 3)}, 3600)

    options = ImportOptions(**{**job.options, "column_map": job.column_map})
    converted = None
    stored = ExitStack()
    try:
        if path is None:
            path, converted = _readable_path(stored.enter_context(local_file(job.file)), job.kind)
        result = import_file(kind=job.kind, path=path, options=options, progress=report)
    except ImportFailed as exc:
        _finish(job, exc.result, failed=True)
    except Exception as exc:
        logger.exception("import job %s crashed", job.pk)
        job.refresh_from_db()
        _discard_file(job)
        job.fail(f"internal error: {exc.__class__.__name__}")
        raise
    except KeyboardInterrupt:  # a command stopped by hand: the import rolled back
        job.refresh_from_db()
        _discard_file(job)
        job.fail("interrupted; nothing was imported.")
        raise
    else:
        _finish(job, result, failed=False)
    finally:
        cache.delete(progress_key(job))
        if converted is not None:
            converted.unlink(missing_ok=True)
        stored.close()


def _finish(job: ImportJob, result: ImportResult, *, failed: bool) -> None:
    """End the job with the importer's report (and save it)."""
    if failed:
        _discard_file(job)
        status, message = job.states.failed, f"{result.error_count} error(s); nothing was imported."
    else:
        status, message = job.states.succeeded, result.summary()
    job.finish(
        status=status,
        message=message,
        rows=result.rows,
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        error_count=result.error_count,
        errors=_errors_json(result),
        progress=0.0 if failed else 1.0,
        phase="failed" if failed else "done",
    )
    from tenants import audit

    audit.record(
        "import.failed" if failed else "import.finished",
        target=job,
        summary=f"{job.kind}: {message}"[:500],
        after={"rows": result.rows, "created": result.created, "updated": result.updated,
               "errors": result.error_count},
    )  # fmt: skip


def bulk_upsert(*, kind: str, rows, options: ImportOptions) -> ImportResult:
    """The API's JSON bulk upsert: up to 10,000 rows, all or nothing, idempotent."""
    from .importer import import_rows

    if not isinstance(rows, list):
        raise ServiceError("the body must be a JSON array of row objects", code="invalid")
    if len(rows) > MAX_BULK_ROWS:
        raise ServiceError(
            f"at most {MAX_BULK_ROWS:,} rows per request (got {len(rows):,}); "
            "split the batch or upload a file",
            code="too_many_rows",
        )
    from .signals import announce_upserted

    result = import_rows(kind=kind, rows=rows, options=options)
    announce_upserted(sender=bulk_upsert, kind=kind, rows=rows)
    return result


ORPHAN_AFTER = timedelta(hours=1)


def sweep_orphan_uploads(*, older_than: timedelta = ORPHAN_AFTER) -> int:
    """Delete the current tenant's stored uploads that no import job names, once older than
    `older_than`. They come from a web process killed between storing an upload and committing
    its job (the row rolled back, the file did not); a refused upload deletes its own file at
    once. Returns how many were deleted. Reads only the tenant's own prefixes
    (import_upload_to: imports/tenants/<id>/, and imports/<id>/ before it, only at the depth of
    <year>/<month>/<name>: the oldest uploads' imports/<year>/ is another tenant's when the id
    is a year), so one tenant's sweep never judges another's files."""
    from django.core.files.storage import default_storage
    from django.utils import timezone

    storage = default_storage
    pk = require_current_tenant().pk
    named = set(ImportJob.objects.exclude(file="").values_list("file", flat=True))
    names = [*dated_files(storage, f"imports/tenants/{pk}"), *dated_files(storage, f"imports/{pk}")]
    deleted = delete_unnamed(storage, names, named, timezone.now() - older_than)
    if deleted:
        logger.warning("deleted %s stored upload(s) no import job names of tenant %s", deleted, pk)
    return deleted
