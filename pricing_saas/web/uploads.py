"""Where a web process spools the uploads it receives, and the sweep of what a dead one left.

Django writes an upload larger than FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file while the
request body arrives, and deletes it when the request ends. A web process killed in the middle
of a body (SIGKILL, the out-of-memory killer, gunicorn's worker timeout) deletes nothing: the
part received stays on the host's disk, up to the 2 GB an upload may have. Here each process
spools into a folder of its own, `UPLOAD_TEMP_DIR/<host>-<pid>`, so that a folder whose process
is gone is known to be garbage: `sweep_dead_uploads()` deletes those of this host. It runs
when a process spools its first upload (gunicorn's replacement for a killed worker cleans up
after it) and hourly with the sweep of stored uploads (`catalog.sweep_orphan_uploads_all`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler

logger = logging.getLogger(__name__)

_ready: dict[str, Path] = {}  # this process's folder, once made (a forked child makes its own)


def _prefix() -> str:
    # The host name tells apart the processes of hosts (or containers) sharing one folder, whose
    # process ids mean nothing to each other.
    return f"{socket.gethostname()}-"


def process_folder() -> Path:
    """This process's spool folder, made on first use (dead processes' folders swept then)."""
    name = f"{_prefix()}{os.getpid()}"
    folder = _ready.get(name)
    if folder is None:
        folder = Path(settings.UPLOAD_TEMP_DIR) / name
        folder.mkdir(parents=True, exist_ok=True)
        _ready.clear()
        _ready[name] = folder
        sweep_dead_uploads()
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_dead_uploads() -> int:
    """Delete the spool folders of this host's processes that are gone (what they were
    receiving when they died); returns how many files were deleted."""
    root = Path(settings.UPLOAD_TEMP_DIR)
    prefix, deleted = _prefix(), 0
    try:
        folders = list(root.iterdir())
    except FileNotFoundError:
        return 0
    for folder in folders:
        pid = folder.name.removeprefix(prefix)
        if not folder.name.startswith(prefix) or not pid.isdigit() or _alive(int(pid)):
            continue
        files = sum(1 for path in folder.rglob("*") if path.is_file())
        shutil.rmtree(folder, ignore_errors=True)
        deleted += files
    if deleted:
        logger.warning("deleted %s partial upload(s) of web processes that died", deleted)
    return deleted


class _SpooledUpload(TemporaryUploadedFile):
    """Django's TemporaryUploadedFile, in this process's spool folder."""

    def __init__(self, name, content_type, size, charset, content_type_extra=None):
        suffix = ".upload" + os.path.splitext(name)[1]
        file = tempfile.NamedTemporaryFile(suffix=suffix, dir=process_folder())  # noqa: SIM115
        UploadedFile.__init__(self, file, name, content_type, size, charset, content_type_extra)


class ProcessFolderUploadHandler(TemporaryFileUploadHandler):
    """FILE_UPLOAD_HANDLERS' handler for large uploads: spooled in this process's folder."""

    def new_file(self, *args, **kwargs):
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = _SpooledUpload(
            self.file_name, self.content_type, 0, self.charset, self.content_type_extra
        )
