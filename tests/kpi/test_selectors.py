"""The KPI reads (`pricing_saas/kpi/selectors.py`): the daily series of the tenant, a category
and a reprice job's SKUs equal the hand computation of the small shop (tests/kpi/conftest.py),
with margin, price index, the derived share and the published price changes on the timeline."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from pricing_saas.kpi import selectors
from pricing_saas.kpi.selectors import Filters, filters_from, performance
from pricing_saas.web.errors import NotFoundError, ServiceError
from tenants.context import tenant_context
from tests.factories import PriceChangeFactory, RepriceJobFactory

from .conftest import MARCH

pytestmark = pytest.mark.django_db

D = Decimal
WINDOW = {"from": "2024-03-01", "to": "2024-03-03"}


def read(world, **params):
    with tenant_context(world.tenant):
        return performance(filters_from({**WINDOW, **params}))


def at(utc_hour: int, day: int = 2) -> dt.datetime:
    return dt.datetime(2024, 3, day, utc_hour, tzinfo=dt.UTC)


@pytest.fixture
def job(refreshed):
    """A reprice job whose one published change is TEA-A's (10 -> 11 on 03-02), a pending one
    of COF-C, and a rollback of COF-C on 03-03 outside any job."""
    ids, tenant = refreshed.ids, refreshed.tenant
    job = RepriceJobFactory(tenant=tenant)
    PriceChangeFactory(
        tenant=tenant,
        product_id=ids["TEA-A"],
        job=job,
        old_price="10",
        new_price="11",
        published_at=at(10),
    )
    PriceChangeFactory(
        tenant=tenant, product_id=ids["COF-C"], job=job, status="pending", published_at=None
    )
    PriceChangeFactory(
        tenant=tenant,
        product_id=ids["COF-C"],
        kind="rollback",
        old_price="20",
        new_price="18",
        published_at=at(9, day=3),
    )
    return job


def test_the_tenant_series_equals_the_hand_computation(refreshed):
    data = read(refreshed)
    assert [p["date"] for p in data.series] == MARCH
    first, second, third = data.series
    assert first == {
        "date": MARCH[0],
        "units": 5,
        "revenue": D("54.00"),
        "profit": D("30.00"),
        "revenue_with_cost": D("54.00"),
        "margin": pytest.approx(30 / 54),
        "profit_derived": D("12.00"),
        "price_index": pytest.approx(10 / 9),  # TEA-A sold at 10, the competitor at 9
    }
    assert (second["units"], second["revenue"], second["profit"]) == (2, D("30.00"), D("6.00"))
    assert second["revenue_with_cost"] == D("10.00")  # the coffee has no cost
    assert second["margin"] == pytest.approx(0.6) and second["profit_derived"] is None
    assert second["price_index"] == pytest.approx(10 / 8)
    assert (third["units"], third["revenue"], third["margin"], third["price_index"]) == (
        0,
        D("0.00"),
        None,
        None,
    )


def test_totals_weigh_margin_and_price_index_as_the_days_do(refreshed):
    totals = read(refreshed).totals
    assert (totals["units"], totals["revenue"], totals["profit"]) == (7, D("84.00"), D("36.00"))
    assert totals["margin"] == pytest.approx(36 / 64)
    assert totals["cost_coverage"] == pytest.approx(64 / 84)
    assert totals["derived_share"] == pytest.approx(24 / 64)  # TEA-B's revenue, at a derived cost
    assert totals["price_index"] == pytest.approx((30 / 9 + 10 / 8) / 4)  # units-weighted
    assert totals["days"] == 3


def test_a_category_is_the_sum_of_its_products(refreshed):
    tea = read(refreshed, category="tea")
    coffee = read(refreshed, category="coffee")
    assert [(p["date"], p["units"], p["revenue"]) for p in tea.series] == [
        (MARCH[0], 5, D("54.00")),
        (MARCH[1], 1, D("10.00")),
        (MARCH[2], 0, D("0.00")),
    ]
    assert [(p["date"], p["revenue"], p["profit"]) for p in coffee.series] == [
        (MARCH[1], D("20.00"), None)
    ]
    assert coffee.totals["margin"] is None and coffee.totals["cost_coverage"] == 0.0
    assert read(refreshed, category="none such").series == []


def test_a_job_shows_its_skus_and_the_changes_on_the_timeline(refreshed, job):
    data = read(refreshed, job=str(job.pk))
    assert [(p["date"], p["units"], p["revenue"]) for p in data.series] == [
        (MARCH[0], 3, D("30.00")),
        (MARCH[1], 1, D("10.00")),
    ]  # TEA-A only: the pending change's COF-C is not one of the job's SKUs
    assert data.changes == [
        {
            "date": MARCH[1],
            "job": job.pk,
            "kind": "recommendation",
            "count": 1,
            "rises": 1,
            "cuts": 0,
            "mean_change": pytest.approx(0.1),
        }
    ]


def test_the_tenant_timeline_marks_every_published_change(refreshed, job):
    changes = read(refreshed).changes
    assert [(c["date"], c["job"], c["kind"], c["cuts"]) for c in changes] == [
        (MARCH[1], job.pk, "recommendation", 0),
        (MARCH[2], None, "rollback", 1),
    ]
    assert read(refreshed, category="tea").changes[0]["job"] == job.pk
    assert len(read(refreshed, category="tea").changes) == 1


def test_markers_fall_on_the_tenants_local_day(refreshed, job):
    refreshed.tenant.timezone = "America/New_York"
    refreshed.tenant.save()
    with tenant_context(refreshed.tenant):
        changes = selectors.change_markers(Filters(date_from=MARCH[0], date_to=MARCH[2]))
    # 10:00 UTC on 03-02 is 05:00 in New York; 09:00 UTC on 03-03 is 04:00 there.
    assert [c["date"] for c in changes] == [MARCH[1], MARCH[2]]
    with tenant_context(refreshed.tenant):
        late = selectors.change_markers(Filters(date_from=MARCH[0], date_to=MARCH[1]))
    assert [c["date"] for c in late] == [MARCH[1]]


def test_default_window_ends_at_the_latest_fact(refreshed):
    with tenant_context(refreshed.tenant):
        filters = filters_from({})
    assert filters.date_to == MARCH[2]
    assert filters.date_from == MARCH[2] - dt.timedelta(days=selectors.DEFAULT_DAYS - 1)


@pytest.mark.parametrize(
    "params, attr",
    [
        ({"from": "2024-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2024-03-03", "to": "2024-03-01"}, "from"),
        ({"from": "2020-01-01", "to": "2024-03-01"}, "from"),
        ({"job": "one"}, "job"),
        ({"category": "x" * 201}, "category"),
    ],
)
def test_malformed_filters_are_refused(refreshed, params, attr):
    with tenant_context(refreshed.tenant), pytest.raises(ServiceError) as error:
        filters_from(params)
    assert error.value.attr == attr and not isinstance(error.value, NotFoundError)


def test_another_tenants_job_is_not_found_like_a_missing_one(refreshed, other_shop):
    theirs = RepriceJobFactory(tenant=other_shop.tenant)
    with tenant_context(refreshed.tenant):
        for job_id in (theirs.pk, 10**9):
            with pytest.raises(NotFoundError):
                filters_from({"job": str(job_id)})


def test_reads_show_only_the_current_tenants_facts(refreshed, other_shop):
    ours, theirs = read(refreshed), read(other_shop)
    assert ours.totals["units"] == 7 and theirs.totals["units"] == 70
    assert ours.totals["revenue"] == D("84.00") and theirs.totals["revenue"] == D("840.00")
