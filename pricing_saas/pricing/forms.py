from __future__ import annotations

from decimal import Decimal

from django import forms

from pricing_saas.integrations.publishers import PUBLISHERS
from pricing_saas.web.inputs import NumberFormField

from . import approvals, rules
from .models import PricingPolicy, RuleSet

PCT_HELP = "a share: 0.10 = 10 %"
# The rule fields the portal's form takes as percentages (the API and the model: shares).
PERCENT_FIELDS = (
    "min_margin",
    "max_step",
    "max_above_competitor",
    "min_units_share",
    "min_revenue_share",
    "min_gain_rel",
    "evidence_margin",
    "window_change",
)


class RuleSetForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=RuleSet.Scope.choices)
    scope_values = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="categories, brands or SKUs, separated by commas or lines",
    )
    categories = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Categories",
        help_text="for the scope “category”: tick your catalog's categories (or type them above; "
        "either way the case does not matter)",
    )
    priority = forms.IntegerField(initial=0, help_text="higher wins")
    active = forms.BooleanField(required=False, initial=True)
    objective = forms.ChoiceField(
        choices=[("", "inherit"), *RuleSet.Objective.choices], required=False
    )
    min_margin = NumberFormField(
        required=False,
        label="Minimum markup over cost (%)",
        help_text="the price at least this many % above the unit cost: 25 keeps a 20 % margin "
        "of the price",
    )
    max_step = NumberFormField(
        required=False, label="Largest change per reprice (%)", help_text="e.g. 10"
    )
    min_price = NumberFormField(required=False)
    max_price = NumberFormField(required=False)
    map_price = NumberFormField(required=False, label="MAP")
    max_above_competitor = NumberFormField(
        required=False,
        label="At most above the lowest competitor (%)",
        help_text="e.g. 5; 0 matches it, a negative number stays below it",
    )
    ending = NumberFormField(required=False, help_text="the cents a price ends in, e.g. 0.99")
    min_units_share = NumberFormField(
        required=False, label="Keep units (%)", help_text="of today's expected units, e.g. 90"
    )
    min_revenue_share = NumberFormField(
        required=False, label="Keep revenue (%)", help_text="of today's revenue, e.g. 95"
    )
    clearance_days = forms.IntegerField(
        required=False, min_value=1, help_text="sell today's stock within this many days"
    )
    min_gain_abs = NumberFormField(
        required=False,
        label="Minimum gain per day",
        help_text="money per day a change must add over today's price (default 0.01)",
    )
    min_gain_rel = NumberFormField(
        required=False,
        label="Minimum gain (%)",
        help_text="of today's daily profit (default 1)",
    )
    evidence_margin = NumberFormField(
        required=False,
        label="Beyond the prices seen (%)",
        help_text="past the lowest and highest price sold at (default 10)",
    )
    window_change = NumberFormField(
        required=False,
        label="Most change per window (%)",
        help_text="in total within the window (default 20)",
    )
    window_days = forms.IntegerField(
        required=False, min_value=1, label="Window (days)", help_text="default 28"
    )

    def __init__(self, *args, categories: list[tuple[str, int]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["categories"].choices = [
            (name, f"{name} ({n:,} SKU{'s' if n != 1 else ''})") for name, n in categories
        ]

    def clean(self):
        """The scope's values: those typed and the categories ticked, once each whatever
        their case; categories are ticked only for the scope "category"."""
        data = super().clean()
        picked = data.pop("categories", [])
        typed = rules.scope_values_of(data.get("scope_values", ""))
        if picked and data.get("scope") != RuleSet.Scope.CATEGORY:
            self.add_error(
                "categories",
                "categories are ticked for the scope “category”: choose that scope or untick them",
            )
        values = {}
        for value in [*typed, *picked]:
            values.setdefault(value.casefold(), value)
        data["scope_values"] = list(values.values())
        return data


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=100, initial="Nightly reprice")
    cron = forms.CharField(max_length=120, initial="0 3 * * *", help_text="m h dom mon dow")
    timezone = forms.CharField(max_length=64, initial="UTC")
    enabled = forms.BooleanField(required=False, initial=True)


class PolicyForm(forms.Form):
    auto_approve = forms.BooleanField(required=False)
    auto_approve_max_change = NumberFormField(min_value=0, max_value=1, help_text=PCT_HELP)
    auto_approve_max_relative_se = NumberFormField(
        min_value=0, max_value=10, label="Confident when s.e. / |elasticity| ≤"
    )
    auto_publish = forms.BooleanField(required=False)
    publisher = forms.ChoiceField(choices=[(k, p.label) for k, p in PUBLISHERS.items()])
    price_war_window_days = forms.IntegerField(min_value=1, max_value=365)
    price_war_max_cuts = forms.IntegerField(min_value=2, max_value=100)
    no_cost_fallback = forms.ChoiceField(
        choices=PricingPolicy._meta.get_field("no_cost_fallback").choices,
        label="Products without a cost (profit objective)",
    )
    loss_budget = NumberFormField(
        min_value=Decimal(0),
        max_value=approvals.MAX_LOSS_BUDGET,
        decimal_places=4,
        label="Risk per run: expected share of products whose change loses money",
        help_text="a share: 0.01 = 1 in 100 (the default); 0 = only changes all but sure to pay",
    )
    max_loss_chance = NumberFormField(
        min_value=Decimal("0.0001"),
        max_value=approvals.MAX_LOSS_CHANCE,
        decimal_places=4,
        label="Highest chance one change may carry of losing money",
        help_text="a share: 0.10 = 1 in 10 (the default)",
    )
