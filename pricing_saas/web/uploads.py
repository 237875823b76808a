"""Where a web process spools the uploads it receives, and the sweep of what a dead one left.

Django writes an upload larger than FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file while the
request body arrives, and deletes it when the request ends. A web process killed in the middle
of a body (SIGKILL, the out-of-memory killer, gunicorn's worker timeout) deletes nothing: the
part received stays on the host's disk, up to the 2 GB an upload may have. Here each process
spools into a folder of its own, `UPLOAD_TEMP_DIR/<host>-<pid>`, so that a folder whose process
is gone is known to be garbage: `sweep_dead_uploads()` deletes those of this host. It runs
when a process spools its first upload (gunicorn's replacement for a killed worker cleans up
after it) and hourly with the sweep of stored uploads (`catalog.sweep_orphan_uploads_all`,
on a host that also runs a default-queue worker). The folder must be the host's own and not
shared between pid namespaces (two containers of one host name would read each other's process
ids), and only its user may write to it (checked on every upload).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler

logger = logging.getLogger(__name__)

_ready: dict[str, Path] = {}  # this process's folder, once made (a forked child makes its own)


def _prefix() -> str:
    # The host name tells apart the processes of hosts (or containers) sharing one folder, whose
    # process ids mean nothing to each other.
    return f"{socket.gethostname()}-"


def _private_dir(path: Path) -> Path:
    """`path` as a folder of this process's user that no one else may write to (made with mode
    700 where it is missing): never a link, never a folder another local user made first, who
    could swap a spooled upload before it is stored (the default root is under the shared
    temporary folder)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise ImproperlyConfigured(
            f"UPLOAD_TEMP_DIR: {path} must be a folder (not a link) of the user the web process "
            "runs as, writable by that user alone"
        )
    return path


def process_folder() -> Path:
    """This process's spool folder, checked on every upload (a cleaner of the temporary folder
    may have removed it since), made on first use (dead processes' folders swept then)."""
    name = f"{_prefix()}{os.getpid()}"
    root = Path(settings.UPLOAD_TEMP_DIR)
    if not root.parent.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
    folder = _private_dir(_private_dir(root) / name)
    if name not in _ready:
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
        if folder.is_symlink() or not folder.is_dir():  # not a spool folder: left alone
            continue
        files = sum(len(names) for _path, _dirs, names in os.walk(folder, followlinks=False))
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
