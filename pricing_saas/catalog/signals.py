"""Signals of the catalog for the apps above it (which it may not import)."""

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
