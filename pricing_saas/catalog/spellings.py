"""A competitor's name as the tenant spells it.

An import reads a name as one competitor whatever its case and runs of white space
(`importer.parse.name_sql`, `importer.upsert.one_spelling`): the readings are stored under the
tenant's one spelling of it (`CompetitorName`). Here:

- `key_sql`, `key_of`: the competitor a name names (CompetitorName.key: its white space read as
  an import reads it, in lower case), in SQL and as an ORM expression. A filter by competitor
  compares keys, so "rival " finds the readings stored as "Rival", and readings stored under
  another spelling before the spellings were one too.
- `CompetitorField`, `CompetitorFilter`: such a filter as a query parameter of a serializer
  and of a django-filter filter set.
- `spelling(name)`: the tenant's spelling of the competitor a name names, to show.
- `merge_stored()`: readings stored before the spellings were one (or written around the
  import) moved under the tenant's spelling; where both spellings hold a reading of the same
  product at the same moment, the one under the tenant's spelling is kept. The KPI side
  (`pricing_saas.kpi.spellings`) renames the alerts and recommendations that name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import django_filters
from django.core.validators import EMPTY_VALUES
from django.db import connection
from django.db.models import F, Func, TextField, Value
from django.db.models.functions import Lower, Trim
from rest_framework import serializers

from tenants.context import require_current_tenant

from .importer.parse import NAME_SPACE, name_sql
from .models import CompetitorName, CompetitorOffer

NAMES = CompetitorName._meta.db_table
OFFERS = CompetitorOffer._meta.db_table


def key_sql(r: str) -> str:
    """SQL: the competitor `r` names, as CompetitorName.key reads it."""
    return f"lower({name_sql(r)})"


def key_of(expression) -> Func:
    """The competitor an expression of text (a field's name, a Value) names, as
    CompetitorName.key reads it: `key_sql` as an ORM expression."""
    if isinstance(expression, str):
        expression = F(expression)
    spaced = Func(expression, Value(NAME_SPACE), Value(" "), Value("g"),
                  function="regexp_replace", output_field=TextField())  # fmt: skip
    return Lower(Trim(spaced))


def spelling(name: str) -> str:
    """The current tenant's spelling of the competitor `name` names: its white space read as
    an import reads it, then its CompetitorName spelling if it has one (else the name so read;
    "" for white space alone)."""
    tenant = require_current_tenant()
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT coalesce((SELECT c.name FROM {NAMES} c
                             WHERE c.tenant_id = %s AND c.key = lower(r.name)), r.name, '')
            FROM (SELECT {name_sql("%s::text")} AS name) AS r
            """,
            [int(tenant.pk), name],
        )
        return cur.fetchone()[0]


HELP = "Only this competitor: its name in any case, runs of white space as one space."


# The longest name a filter reads: a stored name has at most 200 characters, which white
# space read as an import reads it may lengthen
MAX_ASKED = 1000


class CompetitorField(serializers.CharField):
    """A query parameter naming a competitor (compared by `key_sql`)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_ASKED)
        kwargs.setdefault("help_text", HELP)
        super().__init__(**kwargs)


class CompetitorFilter(django_filters.CharFilter):
    """A competitor's name in any spelling an import reads as it (compared by `key_of`)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("field_name", "competitor")
        kwargs.setdefault("help_text", HELP)
        kwargs.setdefault("max_length", MAX_ASKED)
        super().__init__(**kwargs)

    def filter(self, qs, value):
        if value in EMPTY_VALUES:
            return qs
        return competitor_is(qs, value, self.field_name)


def competitor_is(qs, name: str, field_name: str = "competitor"):
    """The rows of `qs` whose `field_name` names the competitor `name` names."""
    return qs.alias(_competitor_key=key_of(field_name)).filter(_competitor_key=key_of(Value(name)))


@dataclass
class Merged:
    """What `merge_stored` did: `renamed` maps each spelling moved to the tenant's spelling,
    `spellings` each competitor the readings name (its key) to the tenant's spelling."""

    renamed: dict[str, str] = field(default_factory=dict)
    spellings: dict[str, str] = field(default_factory=dict)
    readings: int = 0
    duplicates: int = 0
    registered: int = 0
    earliest: datetime | None = None  # the oldest reading moved or deleted

    def as_dict(self) -> dict:
        return {"spellings": len(self.renamed), "readings": self.readings,
                "duplicates": self.duplicates, "registered": self.registered}  # fmt: skip


def merge_stored(*, dry_run: bool = False) -> Merged:
    """Move the current tenant's competitor readings stored under another spelling of a
    competitor (case, white space) to the tenant's spelling of it; a competitor without one
    gets one first: the spelling most of its readings have (read as an import reads it).
    Where a reading of the same product at the same moment is stored under two spellings, the
    one under the tenant's spelling stays (else the latest written) and the others are
    deleted. Call it inside a transaction; with `dry_run`, only count."""
    t = int(require_current_tenant().pk)
    result = Merged()
    with connection.cursor() as cur:
        cur.execute(  # one pass over the readings: each stored spelling and its count
            f"SELECT competitor, {key_sql('competitor')}, count(*) FROM {OFFERS} "
            f"WHERE tenant_id = %s GROUP BY competitor",
            [t],
        )
        stored = [(spelt, key, n) for spelt, key, n in cur.fetchall() if key is not None]
        if not stored:
            return result
        cur.execute(f"SELECT key, name FROM {NAMES} WHERE tenant_id = %s", [t])
        known = dict(cur.fetchall())  # (a tenant has a few competitors)
        cur.execute(  # the spelling of each: the most readings, read as an import reads it
            f"""
            SELECT DISTINCT ON (k) k, name FROM (
                SELECT s.k, {name_sql("s.spelt")} AS name, sum(s.n) AS n
                FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS s (spelt, k, n)
                GROUP BY 1, 2) AS c
            ORDER BY k, n DESC, name
            """,
            [[s for s, _, _ in stored], [k for _, k, _ in stored], [n for _, _, n in stored]],
        )
        chosen = dict(cur.fetchall())
        new = {key: name for key, name in chosen.items() if key not in known}
        result.registered = len(new)
        if new and not dry_run:
            cur.execute(
                f"INSERT INTO {NAMES} (tenant_id, key, name) "
                f"SELECT %s, k, n FROM unnest(%s::text[], %s::text[]) AS u (k, n) "
                f"ON CONFLICT (tenant_id, key) DO NOTHING",
                [t, list(new), list(new.values())],
            )
            result.registered = cur.rowcount  # (another import's, made meanwhile, stands)
            cur.execute(f"SELECT key, name FROM {NAMES} WHERE tenant_id = %s", [t])
            known.update({k: n for k, n in cur.fetchall() if k in new})
        target = {**new, **known}
        result.spellings = {k: target[k] for k in chosen}
        result.renamed = {s: target[k] for s, k, _ in stored if s != target[k]}
        if not result.renamed:
            return result
        spelt, to = list(result.renamed), list(result.renamed.values())
        tail = (
            "SELECT count(*) FROM ranked WHERE rank > 1"
            if dry_run
            else f", gone AS (DELETE FROM {OFFERS} o USING ranked WHERE o.tenant_id = %(t)s "
            "AND o.id = ranked.id AND ranked.rank > 1 RETURNING o.observed_at) "
            "SELECT count(*), min(observed_at) FROM gone"
        )
        cur.execute(  # the readings under two spellings of one moment: one stays
            f"""
            WITH m AS (SELECT * FROM unnest(%(spelt)s::text[], %(to)s::text[]) AS m (spelt, t)),
            moved AS (
                SELECT o.id, o.product_id, m.t AS competitor, o.observed_at
                FROM {OFFERS} o JOIN m ON o.competitor = m.spelt WHERE o.tenant_id = %(t)s),
            kept AS (
                SELECT o.id, o.product_id, o.competitor, o.observed_at
                FROM {OFFERS} o
                JOIN (SELECT DISTINCT product_id, competitor, observed_at FROM moved) AS d
                  ON o.product_id = d.product_id AND o.competitor = d.competitor
                 AND o.observed_at = d.observed_at
                WHERE o.tenant_id = %(t)s),
            ranked AS (
                SELECT id, row_number() OVER (PARTITION BY product_id, competitor, observed_at
                                              ORDER BY stays DESC, id DESC) AS rank
                FROM (SELECT *, false AS stays FROM moved
                      UNION ALL SELECT *, true FROM kept) AS x)
            {tail}
            """,
            {"spelt": spelt, "to": to, "t": t},
        )
        result.duplicates, *earliest = cur.fetchone()
        result.readings = sum(n for s, _, n in stored if s in result.renamed) - result.duplicates
        if not dry_run:
            cur.execute(
                f"WITH moved AS (UPDATE {OFFERS} o SET competitor = m.t "
                f"FROM unnest(%s::text[], %s::text[]) AS m (spelt, t) "
                f"WHERE o.tenant_id = %s AND o.competitor = m.spelt RETURNING o.observed_at) "
                f"SELECT min(observed_at) FROM moved",
                [spelt, to, t],
            )
            times = [x for x in (*earliest, cur.fetchone()[0]) if x is not None]
            result.earliest = min(times) if times else None
    return result
