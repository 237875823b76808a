"""A job split into parts (a partitioned demand fit, a partitioned reprice): the bounded window
of parts in flight, and the parts' staged results in the storage backend.

A job's plan is a JSON dict on its row (`parts`, `queued`, `done`, `folder`, `beat`). The parts
are queued at most settings.PARTITION_IN_FLIGHT at a time: each finished part queues the next
one, so the tasks of other tenants queued meanwhile run in between (FIFO) instead of waiting
behind every part of one big job. Parts are counted by index under the job's row lock: a part
delivered twice counts once. Results go to Django's default storage (never a host's own disk:
with MEDIA_STORAGE=s3 every worker host reads and writes one bucket).
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone


def plan(parts: int, folder: str, **facts) -> dict:
    return {"parts": parts, "queued": 0, "done": [], "folder": folder, **facts, "beat": _now()}


def _now() -> str:
    return timezone.now().isoformat()


def advance(plan: dict, finished: int | None) -> tuple[range, bool] | None:
    """Record part `finished` as done (None: the first call, before any part) in `plan`
    (changed in place; the caller holds the job's row lock and saves it). Returns the part
    indices to queue now and whether every part is in; None for a part already counted (a
    duplicate delivery: its successor was queued the first time)."""
    if finished is not None:
        if finished in plan["done"]:
            return None
        plan["done"].append(finished)
    window = max(int(settings.PARTITION_IN_FLIGHT), 1)
    in_flight = plan["queued"] - len(plan["done"])
    start = plan["queued"]
    stop = max(start, min(plan["parts"], start + window - in_flight))
    plan["queued"] = stop
    plan["beat"] = _now()
    return range(start, stop), len(plan["done"]) == plan["parts"]


def is_stale(plan: dict | None, stale_after, now=None) -> bool | None:
    """Whether a job in parts has shown no sign of life for `stale_after` (each part beats when
    it is counted); None when the job is not in parts."""
    if not plan or "beat" not in plan:
        return None
    from datetime import datetime

    return (now or timezone.now()) - datetime.fromisoformat(plan["beat"]) > stale_after


def name(plan: dict, what: str) -> str:
    return f"{plan['folder']}/{what}"


def save(plan: dict, what: str, content: bytes) -> None:
    path = name(plan, what)
    if default_storage.exists(path):  # a part run again (its worker died after writing)
        default_storage.delete(path)
    default_storage.save(path, ContentFile(content))


def read(plan: dict, what: str) -> bytes:
    with default_storage.open(name(plan, what), "rb") as handle:
        return handle.read()


def clean(plan: dict, names=()) -> None:
    """Delete the job's staged files: those named and every other file in its folder (a part
    delivered twice may have stored a second copy under a suffixed name)."""
    for what in {*names, *staged(plan["folder"])}:
        path = name(plan, what)
        if default_storage.exists(path):
            default_storage.delete(path)


def staged(folder: str) -> list[str]:
    """The files staged under `folder` (none is left once a job ends)."""
    try:
        return default_storage.listdir(folder)[1]
    except (FileNotFoundError, NotADirectoryError):
        return []


def is_done(plan: dict, index: int) -> bool:
    """Part `index` was counted: a second delivery of it has nothing to do (the reduce may be
    reading its file)."""
    return index in plan.get("done", [])
