"""Rule sets: validation, versioned writes, and their resolution into per-SKU optimiser rules.

Precedence: a rule set with a higher `priority` wins; at equal priority the more specific scope
wins (SKU list > brand > category > all products), then the newer set. A field left empty in a
rule set inherits from the sets below it, and finally from DEFAULTS.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Count

from pricing_saas.web.errors import ServiceError
from tenants import audit
from tenants.context import get_current_actor, require_current_tenant

from .models import RuleSet, RuleSetVersion

DEFAULTS = {
    "objective": "profit",
    "min_margin": 0.10,
    "max_step": 0.20,
    "min_price": np.nan,
    "max_price": np.nan,
    "map_price": np.nan,
    "max_above_competitor": np.nan,
    "ending": np.nan,
    "min_units_share": np.nan,
    "min_revenue_share": np.nan,
    "clearance_days": np.nan,
    # A change is worth making from a gain of 1 % of today's daily figure and a cent a day; a
    # price stays within 10 % of the prices seen and moves at most 20 % (one full step) in 28 days.
    "min_gain_abs": 0.01,
    "min_gain_rel": 0.01,
    "evidence_margin": 0.10,
    "window_change": 0.20,
    "window_days": 28,
}
LIMITS = {  # field: (lowest, highest, what it means)
    "min_margin": (Decimal("-0.5"), Decimal("10"), "a share of cost, e.g. 0.10 for 10 %"),
    "max_step": (Decimal("0.001"), Decimal("1"), "a share of today's price, e.g. 0.20"),
    "max_above_competitor": (Decimal("-0.5"), Decimal("2"), "a share, e.g. 0.05 for 5 % above"),
    "ending": (Decimal("0"), Decimal("0.99"), "the cents a price ends in, e.g. 0.99"),
    "min_price": (Decimal("0.01"), Decimal("9999999999.99"), "a price"),
    "max_price": (Decimal("0.01"), Decimal("9999999999.99"), "a price"),
    "map_price": (Decimal("0.01"), Decimal("9999999999.99"), "a price"),
    "min_units_share": (Decimal("0"), Decimal("2"), "a share of today's expected units, e.g. 0.9"),
    "min_revenue_share": (Decimal("0"), Decimal("2"), "a share of today's revenue, e.g. 0.95"),
    "clearance_days": (Decimal("1"), Decimal("3650"), "days to sell today's stock"),
    "min_gain_abs": (Decimal("0"), Decimal("99999999"), "money per day, e.g. 0.50"),
    "min_gain_rel": (Decimal("0"), Decimal("1"), "a share of today's daily figure, e.g. 0.01"),
    "evidence_margin": (Decimal("0"), Decimal("1"), "a share beyond the prices seen, e.g. 0.10"),
    "window_change": (Decimal("0.001"), Decimal("1"), "a share of the price, e.g. 0.15"),
    "window_days": (Decimal("1"), Decimal("365"), "days, e.g. 28"),
}
EDITABLE = ("name", "scope", "scope_values", "priority", "active", *RuleSet.RULE_FIELDS)


def _data(rule_set: RuleSet) -> dict:
    return audit.snapshot(rule_set, list(EDITABLE))


def validate(values: dict) -> dict:
    """Clean and check the editable fields; raises ServiceError naming the field."""
    out = {"scope": RuleSet.Scope.ALL, "priority": 0, "active": True, **values}
    try:
        out["priority"] = int(out["priority"] or 0)
    except (TypeError, ValueError):
        raise ServiceError("priority must be a whole number", attr="priority") from None
    if not -1000 <= out["priority"] <= 1000:
        raise ServiceError("priority must be between -1000 and 1000", attr="priority")
    out["active"] = out["active"] not in (False, "false", "0", "off", "")
    name = str(out.get("name", "")).strip()
    if not name or len(name) > 100:
        raise ServiceError("a rule set needs a name of 1-100 characters", attr="name")
    out["name"] = name
    scope = out.get("scope", RuleSet.Scope.ALL)
    if scope not in RuleSet.Scope.values:
        raise ServiceError(
            f"unknown scope {scope!r}; use one of {', '.join(RuleSet.Scope.values)}", attr="scope"
        )
    raw = out.get("scope_values") or []
    if isinstance(raw, str):
        raw = scope_values_of(raw)
    values_list = sorted({str(v).strip() for v in raw if str(v).strip()})
    if scope != RuleSet.Scope.ALL and not values_list:
        raise ServiceError(f"a {scope} scope needs at least one value", attr="scope_values")
    out["scope_values"] = values_list if scope != RuleSet.Scope.ALL else []
    objective = out.get("objective") or ""
    if objective and objective not in RuleSet.Objective.values:
        raise ServiceError(f"unknown objective {objective!r}", attr="objective")
    out["objective"] = objective
    for field, (low, high, meaning) in LIMITS.items():
        value = out.get(field)
        if value in (None, ""):
            out[field] = None
            continue
        try:
            value = Decimal(str(value))
        except Exception:
            raise ServiceError(f"{field} must be a number ({meaning})", attr=field) from None
        if not value.is_finite() or not low <= value <= high:
            raise ServiceError(
                f"{field} must be between {low} and {high} ({meaning}); got {value}", attr=field
            )
        out[field] = value
    for field in ("clearance_days", "window_days"):
        if out.get(field) is not None:
            if out[field] != out[field].to_integral_value():
                raise ServiceError(f"{field} must be a whole number of days", attr=field)
            out[field] = int(out[field])
    if out.get("min_price") and out.get("max_price") and out["min_price"] > out["max_price"]:
        raise ServiceError("min_price is above max_price", attr="min_price")
    return out


@transaction.atomic
def save_rule_set(*, rule_set: RuleSet | None = None, values: dict) -> RuleSet:
    """Create or update a rule set; each save is a new version and an audit event."""
    if rule_set is not None:  # lock, then merge: concurrent partial edits never undo each other
        rule_set = RuleSet.objects.select_for_update().get(pk=rule_set.pk)
    current = {f: getattr(rule_set, f) for f in EDITABLE} if rule_set else {}
    clean = validate({**current, **values})
    before = _data(rule_set) if rule_set else None
    _user, actor = get_current_actor()
    if rule_set is None:
        rule_set = RuleSet(tenant=require_current_tenant(), version=1)
    else:
        if all(clean[f] == getattr(rule_set, f) for f in EDITABLE):
            return rule_set  # nothing changed: no new version
        rule_set.version += 1
    for field in EDITABLE:
        setattr(rule_set, field, clean[field])
    rule_set.updated_by = actor
    try:
        with transaction.atomic():
            rule_set.save()
    except IntegrityError:
        raise ServiceError(
            f"a rule set named {clean['name']!r} exists already", code="exists", attr="name"
        ) from None
    after = _data(rule_set)
    RuleSetVersion.objects.create(
        rule_set=rule_set, version=rule_set.version, data=audit.plain(after), changed_by=actor
    )
    audit.record(
        "rules.create" if before is None else "rules.update",
        target=rule_set,
        summary=f"{rule_set.name} v{rule_set.version}",
        before=before,
        after=after,
    )
    return rule_set


@transaction.atomic
def delete_rule_set(*, rule_set: RuleSet) -> None:
    audit.record("rules.delete", target=rule_set, summary=rule_set.name, before=_data(rule_set))
    rule_set.delete()


@dataclass
class Resolved:
    """Per-SKU rule values (arrays) and the names of the rule sets that shaped each SKU."""

    values: dict[str, np.ndarray]
    names: np.ndarray  # object array of "Set A, Set B" strings


def _fold(value) -> str:
    return str(value or "").strip().casefold()


def scope_matches(rule_set: RuleSet) -> dict:
    """How many of the tenant's active SKUs a rule set's scope takes in, the values that match
    none (a typo, a category that does not exist) and the existing values they resemble."""
    return scope_preview(rule_set.scope, rule_set.scope_values)


def scope_values_of(text: str) -> list[str]:
    """The values of a scope typed as text: separated by commas or lines, blanks dropped."""
    return [v.strip() for v in str(text or "").replace("\n", ",").split(",") if v.strip()]


def categories() -> list[tuple[str, int]]:
    """The tenant's categories of active products with their SKU counts, by name (one entry per
    spelling that differs only in case: the most common spelling)."""
    from pricing_saas.catalog.models import Product

    counts: dict[str, int] = {}
    names: dict[str, tuple[int, str]] = {}
    rows = (
        Product.objects.filter(active=True)
        .exclude(category="")
        .values_list("category")
        .annotate(n=Count("pk"))
        .values_list("category", "n")
    )
    for value, n in rows:
        key = _fold(value)
        counts[key] = counts.get(key, 0) + n
        names[key] = max(names.get(key, (0, value)), (n, value))
    return sorted(((names[k][1], n) for k, n in counts.items()), key=lambda c: _fold(c[0]))


def scope_preview(scope: str, values: list[str]) -> dict:
    """What a scope would take in, before anything is saved: the number of the tenant's active
    SKUs, the values that match none and the existing values they resemble. Categories and
    brands match whatever their case, as in `resolve`; SKUs exactly."""
    import difflib

    from pricing_saas.catalog.models import Product

    products = Product.objects.filter(active=True)
    if scope == RuleSet.Scope.ALL:
        return {"skus": products.count(), "unmatched": [], "suggestions": []}
    column = {RuleSet.Scope.CATEGORY: "category", RuleSet.Scope.BRAND: "brand",
              RuleSet.Scope.SKUS: "sku"}[scope]  # fmt: skip
    if scope == RuleSet.Scope.SKUS:
        present = set(products.filter(sku__in=values).values_list("sku", flat=True))
        unmatched = [v for v in values if v not in present]
        return {"skus": len(present), "unmatched": unmatched, "suggestions": []}
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    for value, n in products.values_list(column).annotate(n=Count("pk")).values_list(column, "n"):
        counts[_fold(value)] = counts.get(_fold(value), 0) + n
        names.setdefault(_fold(value), value)
    wanted = {_fold(v): v for v in values}
    unmatched = [v for key, v in wanted.items() if key not in counts]
    suggestions = []
    for value in unmatched:
        for close in difflib.get_close_matches(_fold(value), list(names), n=2, cutoff=0.6):
            suggestions.append(names[close])
    return {
        "skus": sum(counts.get(key, 0) for key in wanted),
        "unmatched": unmatched,
        "suggestions": suggestions,
    }


def precedence(rule_set: RuleSet) -> tuple:
    return (rule_set.priority, RuleSet.SPECIFICITY[rule_set.scope], rule_set.pk or 0)


def resolve(rule_sets, skus, categories, brands) -> Resolved:
    """Vectorised: one numpy mask per rule set, applied lowest precedence first."""
    n = len(skus)
    values: dict[str, np.ndarray] = {
        f: np.full(n, DEFAULTS[f], dtype=object if f == "objective" else np.float64)
        for f in RuleSet.RULE_FIELDS
    }
    names = np.full(n, "", dtype=object)
    # categories and brands match whatever their case and surrounding spaces ("eggs" is the
    # category EGGS); SKUs are identifiers and match exactly
    columns = {
        RuleSet.Scope.CATEGORY: np.asarray([_fold(c) for c in categories], dtype=object),
        RuleSet.Scope.BRAND: np.asarray([_fold(b) for b in brands], dtype=object),
        RuleSet.Scope.SKUS: np.asarray(skus, dtype=object),
    }
    for rule_set in sorted((r for r in rule_sets if r.active), key=precedence):
        if rule_set.scope == RuleSet.Scope.ALL:
            mask = np.ones(n, dtype=bool)
        else:
            wanted = list(rule_set.scope_values)
            if rule_set.scope != RuleSet.Scope.SKUS:
                wanted = [_fold(v) for v in wanted]
            mask = np.isin(columns[rule_set.scope], wanted)
        if not mask.any():
            continue
        for field in RuleSet.RULE_FIELDS:
            value = getattr(rule_set, field)
            if value in (None, ""):
                continue
            values[field][mask] = value if field == "objective" else float(value)
        names[mask] = np.where(names[mask] == "", rule_set.name, names[mask] + ", " + rule_set.name)
    return Resolved(values=values, names=names)
