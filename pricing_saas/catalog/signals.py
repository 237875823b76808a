"""Signals of the catalog for the apps above it (which it may not import)."""

from django.dispatch import Signal

# Sent by services.bulk_upsert after the API's JSON rows were written (inside the request's
# transaction), with `kind` and `rows` (the rows as given): what an import job's save says for
# a file, said for rows that come without one.
rows_upserted = Signal()
