"""Large uploads are spooled in a folder of the receiving process; the folders of this host's
processes that are gone (killed in the middle of a body) are swept, no other."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory

from pricing_saas.web import uploads


@pytest.fixture
def spool(settings, tmp_path, monkeypatch):
    settings.UPLOAD_TEMP_DIR = str(tmp_path)
    monkeypatch.setattr(uploads, "_ready", {})
    return tmp_path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def _folder(spool, host: str, pid: int):
    folder = spool / f"{host}-{pid}"
    folder.mkdir()
    (folder / "tmpabc.upload.csv").write_bytes(b"sku,title,price\nA,half a ro")
    return folder


def test_the_sweep_deletes_the_folders_of_this_hosts_processes_that_are_gone(spool):
    host = socket.gethostname()
    dead = _folder(spool, host, _dead_pid())
    alive = _folder(spool, host, os.getppid())
    other_host = _folder(spool, f"not-{host}", _dead_pid())
    assert uploads.sweep_dead_uploads() == 1
    assert not dead.exists()
    assert alive.exists() and other_host.exists()
    assert uploads.sweep_dead_uploads() == 0


def test_a_large_upload_is_spooled_in_the_process_folder_and_gone_with_its_request(spool):
    dead = _folder(spool, socket.gethostname(), _dead_pid())
    content = b"sku,title,price\n" + b"".join(
        b"S%d,Item %d,9.50\n" % (i, i) for i in range(200_000)
    )
    request = RequestFactory().post(
        "/", {"file": SimpleUploadedFile("big.csv", content, content_type="text/csv")}
    )
    upload = request.FILES["file"]
    path = upload.temporary_file_path()  # on disk: above FILE_UPLOAD_MAX_MEMORY_SIZE
    assert os.path.dirname(path) == str(spool / f"{socket.gethostname()}-{os.getpid()}")
    assert not dead.exists()  # the first upload of a process sweeps the dead ones
    upload.close()
    assert not os.path.exists(path)


def _spooled_path() -> str:
    request = RequestFactory().post(
        "/", {"file": SimpleUploadedFile("big.csv", b"x" * 3_000_000, content_type="text/csv")}
    )
    upload = request.FILES["file"]
    path = upload.temporary_file_path()
    upload.close()
    return path


def test_a_spool_folder_removed_while_the_process_lives_is_made_again(spool):
    import shutil

    first = _spooled_path()
    shutil.rmtree(os.path.dirname(first))  # a cleaner of the temporary folder went by
    assert os.path.dirname(_spooled_path()) == os.path.dirname(first)


@pytest.mark.parametrize("how", ["link", "group-writable"])
def test_a_spool_root_that_others_could_write_to_is_refused(settings, tmp_path, monkeypatch, how):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setattr(uploads, "_ready", {})
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    root = tmp_path / "root"
    if how == "link":
        root.symlink_to(real)
    else:
        root.mkdir()
        root.chmod(0o770)
    settings.UPLOAD_TEMP_DIR = str(root)
    with pytest.raises(ImproperlyConfigured, match="UPLOAD_TEMP_DIR"):
        uploads.process_folder()
    assert not any(real.iterdir())  # nothing spooled where another user could reach it


def test_the_sweep_leaves_a_link_named_like_a_dead_process_alone(spool, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "keep.txt").write_text("not a spool file")
    link = spool / f"{socket.gethostname()}-{_dead_pid()}"
    link.symlink_to(outside)
    assert uploads.sweep_dead_uploads() == 0
    assert link.is_symlink() and (outside / "keep.txt").exists()
