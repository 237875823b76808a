"""Stored files (uploads) as paths on this host, whatever the storage backend.

Uploads, publication files and model artifacts go through Django's storage API only, so a host
never reads another host's disk: with `MEDIA_STORAGE=s3` every host reads and writes one bucket.
The readers that need a real file (Postgres COPY from a stream is fine, but the workbook reader
and the sniffer seek) get one here: the storage's own path where it has one (the file
system), else a temporary copy fetched through the storage, removed afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db.models.fields.files import FieldFile

CHUNK = 1 << 20


def storage_path(field: FieldFile) -> Path | None:
    """The file's path when its storage is a local file system, else None."""
    try:
        return Path(field.storage.path(field.name))
    except NotImplementedError:  # a remote storage (S3) has no local path
        return None


@contextmanager
def local_file(field: FieldFile) -> Iterator[Path]:
    """A path to the stored file `field` on this host, valid inside the block."""
    path = storage_path(field)
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="stored-") as folder:
        target = Path(folder) / f"file{Path(field.name).suffix.lower()}"
        with field.storage.open(field.name, "rb") as source, open(target, "wb") as copy:
            shutil.copyfileobj(source, copy, CHUNK)
        yield target
