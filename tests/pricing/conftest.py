"""Fixtures of the pricing tests: the two steps most service tests start with."""

from __future__ import annotations

import pytest

from pricing_saas.pricing import approvals, services
from pricing_saas.pricing.models import Recommendation


@pytest.fixture
def reprice():
    """`reprice()`: a reprice job started and run here, in the test (not queued); returns it."""

    def reprice():
        job = services.start_reprice(enqueue=False)
        return services.run_reprice(job_id=job.pk)

    return reprice


@pytest.fixture
def approve_some():
    """`approve_some(count=3)`: approves the first `count` pending recommendations (by id);
    returns their ids."""

    def approve_some(count: int = 3) -> list[int]:
        ids = list(
            Recommendation.objects.filter(status="pending")
            .order_by("pk")
            .values_list("pk", flat=True)
        )[:count]
        approvals.bulk_decide(approve=True, ids=ids)
        return ids

    return approve_some
