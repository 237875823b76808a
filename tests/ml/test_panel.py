"""The demand panel (`ml/panel.py`): a tenant's sales and competitor prices read into the
demand model's arrays: zero days, daily reports and order exports, competitor prices carried
forward per competitor on the tenant's local days."""

from __future__ import annotations

import numpy as np
import pytest

from pricing_saas.catalog.importer import import_rows
from pricing_saas.catalog.models import Product
from tenants.context import tenant_context


def test_demand_panel_counts_zero_days_only_where_the_price_is_known(stocked):
    from ml.panel import demand_panel

    rows = [  # day 2 lies between two sales at 10.00: zero units at 10.00; day 4 is unknown
        {"date": "2024-03-01", "sku": "S0", "units": 2, "price": "10.00"},
        {"date": "2024-03-03", "sku": "S0", "units": 1, "price": "10.00"},
        {"date": "2024-03-05", "sku": "S0", "units": 3, "price": "12.00"},
        {"date": "2024-03-06", "sku": "S0", "units": 1, "price": "12.00"},
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, _ids, stats = demand_panel()
    order = np.argsort(panel.day)
    days = panel.day[order] - panel.day.min() + 1
    assert days.tolist() == [1, 2, 3, 5, 6]
    assert panel.units[order].tolist() == [2, 0, 1, 3, 1]
    assert panel.price[order].tolist() == [10, 10, 10, 12, 12]
    # Days 3 and 5 are in the data because they sold (a zero there would have been dropped).
    assert panel.truncated[order].tolist() == [False, False, True, True, False]
    assert stats["truncated_share"] == 0.4


def test_demand_panel_fills_every_day_of_longer_gaps(stocked):
    from ml.panel import demand_panel

    rows = [
        {"date": "2024-03-01", "sku": "S1", "units": 2, "price": "10.00"},
        {"date": "2024-03-05", "sku": "S1", "units": 1, "price": "10.00"},
        {"date": "2024-03-08", "sku": "S1", "units": 1, "price": "10.00"},
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, _ids, _stats = demand_panel()
    order = np.argsort(panel.day)
    assert (panel.day[order] - panel.day.min() + 1).tolist() == list(range(1, 9))
    assert panel.units[order].tolist() == [2, 0, 0, 0, 1, 0, 0, 1]
    assert not panel.truncated.any()


def test_demand_panel_reads_reported_zero_days_at_their_price(stocked):
    """A daily report lists days on sale without a sale as 0 units at the day's price: those
    zeros are observed (at a known price, even where the price moved), nothing is truncated,
    and a day missing from such a report was not on sale. A SKU reported by orders only keeps
    the old rules beside it."""
    from ml.panel import demand_panel

    rows = [
        {"date": "2024-03-01", "sku": "S0", "units": 2, "price": "10.00"},
        {"date": "2024-03-02", "sku": "S0", "units": 0, "price": "11.00"},
        {"date": "2024-03-03", "sku": "S0", "units": 1, "price": "12.00"},
        {"date": "2024-03-05", "sku": "S0", "units": 0, "price": "12.00"},
        {"date": "2024-03-06", "sku": "S0", "units": 1, "price": "9.00"},
        {"date": "2024-03-01", "sku": "S1", "units": 2, "price": "10.00"},
        {"date": "2024-03-03", "sku": "S1", "units": 1, "price": "12.00"},
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, ids, _stats = demand_panel()
        s0 = ids.index(Product.objects.get(sku="S0").pk)
    mine = panel.sku == s0
    order = np.argsort(panel.day[mine])
    days = panel.day[mine][order] - panel.day[mine].min() + 1
    assert days.tolist() == [1, 2, 3, 5, 6]  # day 4 is not in the report: not on sale
    assert panel.units[mine][order].tolist() == [2, 0, 1, 0, 1]
    assert panel.price[mine][order].tolist() == [10, 11, 12, 12, 9]
    assert not panel.truncated[mine].any()
    other = ~mine  # orders only, price moved between its sales: day 2 unknown, both truncated
    assert panel.units[other].tolist() == [2, 1] and panel.truncated[other].all()


def test_a_stray_zero_row_in_an_order_export_is_dropped_not_read_as_a_daily_report(stocked):
    """One 0-unit row (a refunded line) in an order export must not switch the SKU's history
    to 'every day is listed': its other days keep the order-export rules (found in review)."""
    from ml.panel import demand_panel

    rows = [  # sales on 4 of 20 days, one refunded line: far from a daily report
        {"date": "2024-03-01", "sku": "S0", "units": 2, "price": "10.00"},
        {"date": "2024-03-05", "sku": "S0", "units": 0, "price": "10.00"},
        {"date": "2024-03-08", "sku": "S0", "units": 1, "price": "10.00"},
        {"date": "2024-03-14", "sku": "S0", "units": 1, "price": "12.00"},
        {"date": "2024-03-20", "sku": "S0", "units": 3, "price": "12.00"},
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, ids, _stats = demand_panel()
    assert len(ids) == 1
    order = np.argsort(panel.day)
    days = (panel.day[order] - panel.day.min() + 1).tolist()
    # days 2-7 between the two sales at 10.00 are zeros; 9-13 (price moved) are unknown
    assert days == [1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16, 17, 18, 19, 20]
    assert panel.units[order].sum() == 7 and panel.truncated[order].tolist()[7:9] == [True, True]


def test_products_that_never_sold_stay_out_of_the_panel_and_keep_the_cold_start(stocked):
    """A daily report lists a product that never sold (0 units every day): it has no volume to
    learn from, so it gets no estimate and keeps the cold-start path (found in review); so does
    one whose only sales were free, wherever it falls in the product order."""
    from ml.panel import demand_panel

    rows = [
        {"date": f"2024-03-{d:02d}", "sku": "S0", "units": 0, "price": "10.00"}
        for d in range(1, 11)
    ]
    rows += [
        {"date": f"2024-03-{d:02d}", "sku": "S1", "units": 1 + d % 2, "price": "9.00"}
        for d in range(1, 11)
    ]
    rows += [{"date": "2024-03-01", "sku": "S2", "units": 1, "price": "5.00", "revenue": "0"}]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, ids, _stats = demand_panel()
        skus = dict(Product.objects.values_list("pk", "sku"))
    assert [skus[pk] for pk in ids] == ["S1"] and panel.n_skus == 1


def test_demand_panel_carries_competitor_prices_forward_two_weeks(stocked):
    from ml.panel import demand_panel

    sales = [
        {"date": f"2024-03-{d:02d}", "sku": s, "units": 1, "price": "10.00"}
        for s in ("S0", "S1")
        for d in range(1, 31)
    ]
    offers = [
        {"sku": "S0", "competitor": "A", "price": "9.00", "observed_at": "2024-03-03T09:00:00Z"},
        {"sku": "S0", "competitor": "B", "price": "8.50", "observed_at": "2024-03-03T18:00:00Z"},
        {"sku": "S0", "competitor": "A", "price": "9.20", "observed_at": "2024-03-05T09:00:00Z"},
        {"sku": "S0", "competitor": "A", "price": "7.00", "observed_at": "2024-03-10T09:00:00Z",
         "in_stock": "false"},  # out of stock: not a price anyone can buy at
        {"sku": "S0", "competitor": "A", "price": "9.50", "observed_at": "2024-03-20T09:00:00Z"},
    ]  # fmt: skip
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=sales)
        import_rows(kind="competitor_prices", rows=offers)
        panel, ids, stats = demand_panel()
        s0 = ids.index(Product.objects.get(sku="S0").pk)
    day = panel.day - panel.day.min() + 1
    comp = {
        int(d): c for d, c, s in zip(day, panel.competitor_price, panel.sku, strict=True) if s == s0
    }
    assert np.isnan(comp[1]) and np.isnan(comp[2])  # nothing observed yet
    assert comp[3] == 8.5 and comp[17] == 8.5  # the day's lowest, held for 14 days
    assert np.isnan(comp[18]) and np.isnan(comp[19])  # 15 and 16 days after: unknown
    assert comp[20] == 9.5 and comp[30] == 9.5
    assert np.isnan(panel.competitor_price[panel.sku != s0]).all()  # S1: never observed
    assert 0 < stats["competitor_share"] < 0.5
    # the readings' jitter (A's consecutive in-stock readings: 9.00 -> 9.20; its sold-out
    # reading ends the run, so 9.20 -> 9.50 is no change), which the hinge is smoothed over
    assert panel.competitor_sd == pytest.approx(np.log(9.2 / 9.0) * 1.4826 / np.sqrt(2))


def test_each_competitor_holds_its_own_price_on_the_tenants_local_days(stocked):
    """Found in review: the panel carried forward only the latest day's lowest price, so a
    dearer competitor seen later hid a cheaper one still in force, and days were cut in UTC
    whatever the tenant's time zone."""
    from ml.panel import demand_panel

    stocked.tenant.timezone = "America/Los_Angeles"
    stocked.tenant.save(update_fields=["timezone"])
    sales = [
        {"date": f"2024-03-{d:02d}", "sku": "S0", "units": 1, "price": "10.00"}
        for d in range(1, 31)
    ]
    offers = [
        {"sku": "S0", "competitor": "A", "price": "8.00", "observed_at": "2024-03-02T20:00:00Z"},
        {"sku": "S0", "competitor": "B", "price": "9.00", "observed_at": "2024-03-04T20:00:00Z"},
        # 03:00 UTC on the 11th is the evening of the 10th in Los Angeles
        {"sku": "S0", "competitor": "B", "price": "7.00", "observed_at": "2024-03-11T03:00:00Z"},
        {"sku": "S0", "competitor": "A", "price": "8.00", "observed_at": "2024-03-12T20:00:00Z",
         "in_stock": "false"},  # A sold out: its price no longer holds
        {"sku": "S0", "competitor": "C", "price": "1.00", "observed_at": "2023-01-01T20:00:00Z"},
        # D in stock at 6.00 in the morning of the 15th, sold out that evening (local time)
        {"sku": "S0", "competitor": "D", "price": "6.00", "observed_at": "2024-03-15T16:00:00Z"},
        {"sku": "S0", "competitor": "D", "price": "6.00", "observed_at": "2024-03-16T01:00:00Z",
         "in_stock": "false"},
    ]  # fmt: skip
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=sales)
        import_rows(kind="competitor_prices", rows=offers)
        panel, _ids, _stats = demand_panel()
    comp = dict(
        zip((panel.day - panel.day.min() + 1).tolist(), panel.competitor_price, strict=True)
    )
    assert np.isnan(comp[1])
    assert comp[2] == 8.0 and comp[4] == 8.0 and comp[9] == 8.0  # B's 9.00 does not hide A
    assert comp[10] == 7.0 and comp[11] == 7.0  # B's cut lands on the local 10th
    assert comp[15] == 6.0 and comp[16] == 7.0  # D's price held only on the day it sold out
    assert comp[24] == 7.0 and np.isnan(comp[25])  # 14 days, then unknown (A sold out)


def test_a_tenant_whose_files_record_no_revenue_prices_sales_at_the_listed_price(stocked):
    """Revenue 0 on every row means revenue is not recorded, not that every sale was free."""
    from ml.panel import demand_panel

    rows = [
        {
            "date": f"2024-03-{d:02d}",
            "sku": "S1",
            "units": 1 + d % 3,
            "price": "9.00",
            "revenue": "0",
        }
        for d in range(1, 21)
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=rows)
        panel, ids, _stats = demand_panel()
        skus = dict(Product.objects.values_list("pk", "sku"))
    assert [skus[pk] for pk in ids] == ["S1"] and np.allclose(panel.price, 9.0)


def test_the_tenants_competitor_noise_is_fitted_on_its_own_in_stock_changes(stocked, world_b):
    """ml.panel.competitor_noise bins in SQL the |log change| between each competitor's
    consecutive in-stock readings (a sold-out reading ends a run: no change across it, as the
    level reads a run): the same Noise as the changes binned in Python, and another tenant's
    readings (here all wild re-prices) change nothing, nor does a reading of another item
    (a tenth of the product's price: left out of its run, which goes on past it)."""
    import datetime as dt

    from django.utils import timezone

    from ml.panel import competitor_noise
    from ml.science.competitor import MIN_CHANGES, PAIR_STEP_MAX, noise_of_changes

    rng = np.random.default_rng(11)
    start = timezone.now() - dt.timedelta(days=30)
    offers, changes, products = [], [], []
    with tenant_context(stocked.tenant):
        own = dict(Product.objects.values_list("sku", "price"))
    for i in range(12):
        for name in ("A", "B"):
            level = float(own[f"S{i}"]) * float(np.exp(rng.normal(0, 0.1)))
            runs = [[]]
            for day in range(8):
                if day == 4 and rng.random() < 0.5:
                    level *= float(np.exp(rng.normal(0, 0.15)))  # a re-price
                price = round(level * float(np.exp(rng.normal(0, 0.03))), 2)
                if day == 2 and name == "B":  # B's scraper lands on an accessory once
                    offers.append(
                        {"sku": f"S{i}", "competitor": name, "price": f"{level / 10:.2f}",
                         "observed_at": (start + dt.timedelta(days=day, hours=5)).isoformat()}
                    )  # fmt: skip
                sold_out = day == 6 and i % 3 == 0  # a sold-out reading is not a change
                offers.append(
                    {"sku": f"S{i}", "competitor": name, "price": f"{price:.2f}",
                     "observed_at": (start + dt.timedelta(days=day)).isoformat(),
                     "in_stock": "false" if sold_out else "true"}
                )  # fmt: skip
                if sold_out:
                    runs.append([])
                else:
                    runs[-1].append(price)
            for run in runs:
                steps = np.diff(np.log(run))
                changes += np.abs(steps).tolist()
                moved = (np.abs(steps) >= 1e-4) & (np.abs(steps) < PAIR_STEP_MAX)
                both = moved[1:] & moved[:-1]
                products += (steps[1:] * steps[:-1])[both].tolist()
    wild = [
        {"sku": "S0", "competitor": "A", "price": f"{p:.2f}",
         "observed_at": (start + dt.timedelta(days=d)).isoformat()}
        for d, p in enumerate(np.exp(rng.normal(3, 1.0, 40)))
    ]  # fmt: skip
    with tenant_context(world_b.tenant):
        import_rows(kind="products", rows=[{"sku": "S0", "title": "Other", "price": "20.00"}])
        import_rows(kind="competitor_prices", rows=wild)
    with tenant_context(stocked.tenant):
        import_rows(kind="competitor_prices", rows=offers)
        got = competitor_noise(start - dt.timedelta(days=1))
    assert len(changes) >= MIN_CHANGES
    sd = float(np.median(changes)) * 1.4826 / np.sqrt(2)
    pairs = (sum(products), sum(np.square(products)), len(products))
    want = noise_of_changes(sd, changes, pairs)
    assert len(products) >= MIN_CHANGES  # the jitter held at the pairs
    assert got.changes == want.changes == len(changes)
    assert got.sd == pytest.approx(want.sd, rel=1e-9)
    assert got.jump_share == pytest.approx(want.jump_share, rel=1e-6)
    assert got.jump_sd == pytest.approx(want.jump_sd, rel=1e-6)
    assert got.still_sd == pytest.approx(want.still_sd, rel=1e-6)
    assert got.sellers == ()  # each seller's under SELLER_MIN_CHANGES: the tenant's alone


def test_a_competitor_listing_far_from_the_products_price_is_not_the_competitors_price(stocked):
    """A feed's match priced at a fifth of the product's (an accessory) is not in the demand
    fit's competitor gap; a cheaper real seller beside it is, and its price holds on past a
    reading of the accessory, alone on its day or beside the real one."""
    from ml.panel import demand_panel

    sales = [
        {"date": f"2024-03-{d:02d}", "sku": "S0", "units": 1, "price": "10.00"}
        for d in range(1, 11)
    ]
    offers = [
        {"sku": "S0", "competitor": "Case", "price": "2.00", "observed_at": "2024-03-02T09:00:00Z"},
        {"sku": "S0", "competitor": "Real", "price": "9.00", "observed_at": "2024-03-05T09:00:00Z"},
        # the real seller's scraper lands on the accessory: no news of its price
        {"sku": "S0", "competitor": "Real", "price": "2.10", "observed_at": "2024-03-07T09:00:00Z"},
        {"sku": "S0", "competitor": "Real", "price": "8.80", "observed_at": "2024-03-08T08:00:00Z"},
        {"sku": "S0", "competitor": "Real", "price": "2.20", "observed_at": "2024-03-08T10:00:00Z"},
    ]  # fmt: skip
    with tenant_context(stocked.tenant):
        import_rows(kind="sales", rows=sales)
        import_rows(kind="competitor_prices", rows=offers)
        panel, _ids, _stats = demand_panel()
    comp = dict(
        zip((panel.day - panel.day.min() + 1).tolist(), panel.competitor_price, strict=True)
    )
    assert np.isnan(comp[2]) and np.isnan(comp[4])  # the case alone: no competitor
    assert comp[5] == 9.0 and comp[7] == 9.0
    assert comp[8] == 8.8 and comp[10] == 8.8  # the day's real reading, not the stray's


def test_the_readings_statements_put_the_planner_settings_back(world_a):
    """The noise and jitter statements raise work_mem and turn nested loops off for
    themselves only: inside a caller's transaction (a reprice), the settings after them are
    the ones before."""
    import datetime as dt

    from django.db import connection, transaction
    from django.utils import timezone

    from ml.panel import competitor_jitter, competitor_noise

    since = timezone.now() - dt.timedelta(days=30)
    with tenant_context(world_a.tenant), transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT current_setting('work_mem'), current_setting('enable_nestloop')")
        before = cur.fetchone()
        competitor_noise(since)
        competitor_jitter(since)
        cur.execute("SELECT current_setting('work_mem'), current_setting('enable_nestloop')")
        assert cur.fetchone() == before == (before[0], "on")


def test_the_competitors_week_counts_the_days_its_lowest_price_was_read(stocked):
    """`competitor_today(..., readings=True)`: per product, the week's median of each day's
    lowest reading in force and the number of days that lowest price was read on that day (a
    reading carried over days is one reading, not seven): read daily, 7; read once before the
    week, 0; a cheaper seller read once before the week beside a dearer one read daily, 0 (the
    median is the cheaper one's reading); the cheaper seller read daily, 7."""
    import datetime as dt

    from ml.panel import competitor_today

    def reading(sku, seller, price, day):
        return {"sku": sku, "competitor": seller, "price": f"{price:.2f}",
                "observed_at": f"{day.isoformat()}T12:00:00Z"}  # fmt: skip

    last = dt.date(2024, 3, 7)
    week = [last - dt.timedelta(days=k) for k in range(7)]
    before = dt.date(2024, 2, 28)
    offers = [
        *(reading("S0", "A", 10 + 0.1 * k, d) for k, d in enumerate(week)),
        reading("S1", "A", 10, before),
        reading("S2", "A", 9, before),
        *(reading("S2", "B", 10 + 0.1 * k, d) for k, d in enumerate(week)),
        *(reading("S3", "A", 9 + 0.1 * k, d) for k, d in enumerate(week)),
        reading("S3", "B", 10, week[3]),
    ]
    with tenant_context(stocked.tenant):
        import_rows(kind="competitor_prices", rows=offers)
        ids = [Product.objects.get(sku=f"S{i}").pk for i in range(4)]
        order = np.argsort(ids)
        median, read = competitor_today(
            np.asarray(ids)[order].tolist(), np.full(4, np.nan), last.toordinal(), readings=True
        )
    median, read = median[np.argsort(order)], read[np.argsort(order)]
    assert read.tolist() == [7, 0, 0, 7]
    assert median == pytest.approx([10.3, 10.0, 9.0, 9.3])
