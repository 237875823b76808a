"""Stored files a tenant owns, for the sweeps of files no row names (uploads, model files):
listed under a prefix in any storage (a folder, or an S3 bucket through django-storages) and
deleted once old enough."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def dated_files(storage, prefix: str):
    """The files at `prefix`/<year>/<month>/<name> (four digits, two digits): the layout of the
    stored files a tenant owns; nothing at another depth."""
    for name in stored_under(storage, prefix):
        parts = name[len(prefix) + 1 :].split("/")
        year, month = (parts[0], parts[1]) if len(parts) == 3 else ("", "")
        if len(year) == 4 and len(month) == 2 and year.isdigit() and month.isdigit():
            yield name


def delete_unnamed(storage, names, named: set, cutoff) -> int:
    """Delete each of `names` that `named` lacks and that was last written before `cutoff`; a
    file gone meanwhile (another sweep) or refused by the storage is left and logged. Returns
    how many were deleted."""
    deleted = 0
    for name in names:
        if name in named:
            continue
        try:
            if storage.get_modified_time(name) > cutoff:
                continue
            storage.delete(name)
        except Exception as exc:  # FileNotFoundError, or the S3 client's 404
            logger.warning("sweep left %s: %s: %s", name, exc.__class__.__name__, exc)
            continue
        deleted += 1
    return deleted


def stored_under(storage, folder: str):
    """Every file name under `folder` in `storage`, depth first (none if it has no such
    folder)."""
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:  # the file system has no such folder yet (S3 answers empty)
        return
    for name in files:
        yield f"{folder}/{name}"
    for sub in folders:
        yield from stored_under(storage, f"{folder}/{sub}")
