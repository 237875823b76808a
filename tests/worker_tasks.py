"""Tasks that exist only for tests, loaded into a worker subprocess with `--include
tests.worker_tasks`: the product has no task that runs as long as a test needs."""

from __future__ import annotations

import contextlib
import time

from billiard.exceptions import SoftTimeLimitExceeded

from pricing_saas.celery import app


@app.task(name="tests.overrun")
def overrun(seconds: float) -> float:
    """Runs `seconds`, ignoring its soft time limit (as a task stuck in a C call would)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with contextlib.suppress(SoftTimeLimitExceeded):
            time.sleep(0.05)
    return seconds
