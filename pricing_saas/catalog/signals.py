"""Signals of the catalog for the apps above it (which it may not import)."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.dispatch import Signal

# Sent by services.bulk_upsert after the API's JSON rows were written (inside the request's
# transaction), with `kind` and `rows` (the rows as given): what an import job's save says for
# a file, said for rows that come without one.
rows_upserted = Signal()

# Sent by the shop connectors when a shop's price of a known product was changed there (by a
# person, not by our own push), after the catalog took it, inside the same transaction:
# `changes` = [(product id, the catalog's price before, the shop's price)], `source` names the
# shop. The pricing app records each in the SKU's price history.
shop_prices_changed = Signal()


# Rows upserted while `deferred_upserts()` is open, by kind: what `rows_upserted` will say once,
# when it closes (the dates are all its receivers read).
_deferred: ContextVar[dict[str, list] | None] = ContextVar("deferred_upserts", default=None)
_DATE_FIELDS = ("date", "observed_at")


def announce_upserted(*, sender, kind: str, rows: list) -> None:
    """Send `rows_upserted` now, or keep what it needs for the end of `deferred_upserts()`."""
    bucket = _deferred.get()
    if bucket is None:
        rows_upserted.send(sender=sender, kind=kind, rows=rows)
        return
    kept = bucket.setdefault(kind, [])
    for row in rows:
        dates = {f: row[f] for f in _DATE_FIELDS if isinstance(row, dict) and f in row}
        if dates or not kept:
            kept.append(dates)
    # Only the first and last day matter to the receivers: keep the list short.
    if len(kept) > 1000:
        for field in _DATE_FIELDS:
            values = sorted(str(r[field]) for r in kept if field in r)
            if values:
                kept[:] = [{field: values[0]}, {field: values[-1]}]


@contextmanager
def deferred_upserts() -> Iterator[None]:
    """One `rows_upserted` per kind for everything upserted inside (a shop sync writes in
    batches: the KPI facts are refreshed once at its end, not once a batch), sent when the
    block ends, also when it ends by an error (what was written stays written)."""
    if _deferred.get() is not None:  # nested: the outer block sends
        yield
        return
    bucket: dict[str, list] = {}
    token = _deferred.set(bucket)
    try:
        yield
    finally:
        _deferred.reset(token)
        for kind, rows in bucket.items():
            rows_upserted.send(sender=deferred_upserts, kind=kind, rows=rows)
