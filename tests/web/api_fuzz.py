"""The API against its own OpenAPI schema, fuzzed by schemathesis as each role: what the
schemathesis test (`tests/web/test_schemathesis.py`, a bounded run in the suite) and the long run
(`benchmarks/schemathesis_run.py`) share.

- `seed`: objects of every resource, in the states whose fields may be null, and which object
  each operation's example names (`with_examples` writes them into the schema);
- `credentials`: the headers of each role (an API key; the owner, who has none, a session);
- `config`: the checks (every built-in one but `positive_data_acceptance`: the schema cannot say
  every business rule, a cron expression or a known SKU, so a schema-valid request may be refused
  with a documented 400), deterministic generation;
- `kind_of`: what a failure counts as. A malformed request accepted counts by where it was
  malformed: in a query or path parameter it is a bug; in a JSON body it is DRF's lenient
  parsing (`"1"` for an integer, `0` for a string), counted but not gated;
- `run`: the engine behind `schemathesis run`, one run per role over HTTP, with counts.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import requests
import schemathesis
from django.utils import timezone
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine import Status, events, from_schema

from tenants.context import tenant_context
from tenants.models import Membership
from tenants.roles import Role

SCHEMA_PATH = "/api/v1/schema/"
KEY_ROLES = (Role.VIEWER, Role.ANALYST, Role.APPROVER, Role.ADMIN)  # owners have no API key
ROLES = (*KEY_ROLES, Role.OWNER)  # the owner calls with a portal session
# What a failure counts as, by check (and for malformed requests, where they were malformed).
KINDS = {
    "not_a_server_error": "server errors",
    "response_schema_conformance": "response-schema violations",
    "status_code_conformance": "undocumented status codes",
    "content_type_conformance": "undocumented media types",
    "negative_data_rejection:query": "malformed query parameters accepted",
    "negative_data_rejection:path": "malformed path parameters accepted",
    "negative_data_rejection:body": "malformed JSON bodies accepted (lenient parsing, not gated)",
}
NOT_GATED = {"negative_data_rejection:body"}
EXCLUDED_CHECKS = ["positive_data_acceptance"]


# `ignored_auth` sends a request without the credentials of the operation's security scheme
# and expects a refusal. A portal session travels here as a Cookie header of every request
# (the session and its CSRF cookie together: requests drops cookies given apart from a Cookie
# header), which the check cannot take off, so for the session caller it would report every
# operation; it runs for the API-key callers, whose Authorization header it does take off.
SESSION_EXCLUDED_CHECKS = ["ignored_auth"]


def config(
    *, max_examples: int, phases: list[str], seed: int = 0, session: bool = False
) -> schemathesis.Config:
    """The run's configuration (the same for the test and the long run, but for the size)."""
    settings = schemathesis.Config()
    settings.update(seed=seed, max_failures=None)
    project = settings.projects.override  # what CLI options set: above any config file
    project.update(workers=1, continue_on_failure=True, request_timeout=60)
    project.generation.update(max_examples=max_examples, deterministic=True)
    project.phases.update(phases=phases)
    project.phases.examples.fill_missing = True  # an example names the id; generate the rest
    excluded = EXCLUDED_CHECKS + (SESSION_EXCLUDED_CHECKS if session else [])
    project.checks.update(excluded_check_names=excluded)
    return settings


def kind_of(check: str, case) -> str:
    """The KINDS key of a failed check on `case`."""
    if check != "negative_data_rejection":
        return check
    for location in (ParameterLocation.QUERY, ParameterLocation.PATH, ParameterLocation.HEADER):
        if case.meta is not None and case.meta.is_negative_at(location):
            return f"{check}:{location.value}"
    return f"{check}:body"


@dataclass
class Failure:
    role: str
    operation: str
    kind: str
    title: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.role}] {self.operation}: {self.title} ({self.kind})\n{self.detail}"


@dataclass
class Tally:
    requests: int = 0
    cases: int = 0
    operations: set[str] = field(default_factory=set)
    by_role: Counter = field(default_factory=Counter)  # requests per role
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the run itself failed (not the API)

    def count(self, kind: str) -> int:
        return sum(f.kind == kind for f in self.failures)

    def gated(self) -> list[Failure]:
        return [f for f in self.failures if f.kind not in NOT_GATED]

    def report(self, failures: list[Failure] | None = None) -> str:
        failures = self.gated() if failures is None else failures
        lines = [f"{len(failures)} failure(s), {len(self.errors)} error(s)"]
        lines += [str(f) for f in failures[:20]]
        lines += self.errors[:10]
        return "\n\n".join(lines)


# --- the data the run starts from ---------------------------------------------------------------


def seed(tenant, owner) -> dict[tuple[str, str], int]:
    """Objects of every resource the API serves, in the states whose fields may be null (an
    offer without a URL, an untrained model's RMSLE, a schedule that is off, a publication
    without a file). Returns the id each operation's example names: ("GET",
    "/api/v1/rule-sets/{id}/versions/") -> a rule set with versions. Deleting operations get
    objects of their own, so that the others still find theirs."""
    from django.core.files.base import ContentFile

    from pricing_saas.portal.services import create_api_key, invite_member
    from pricing_saas.pricing import rules
    from pricing_saas.pricing.models import Publication
    from tests import factories as f

    ids: dict[str, int] = {}
    with tenant_context(tenant):
        product = f.ProductFactory(tenant=tenant, category="tools", brand="Acme")
        ids["products"] = product.pk
        f.ProductFactory(tenant=tenant, category="garden")
        f.SalesRecordFactory(tenant=tenant, product=product)
        ids["competitor-offers"] = f.CompetitorOfferFactory(tenant=tenant, product=product).pk
        f.CompetitorOfferFactory(tenant=tenant, product=product, url="https://rival.example/p/1")
        ids["imports"] = f.ImportJobFactory(tenant=tenant).pk
        ids["model-versions"] = f.ModelVersionFactory(tenant=tenant, metrics={}).pk
        f.ModelVersionFactory(
            tenant=tenant, metrics={"chosen": "baseline", "baseline": {"rmsle": 0.41}}
        )
        job = f.RepriceJobFactory(tenant=tenant)
        ids["reprice-jobs"] = job.pk
        ids["recommendations"] = f.RecommendationFactory(tenant=tenant, product=product, job=job).pk
        ids["recommendations/reject"] = f.RecommendationFactory(
            tenant=tenant, product=product, job=job
        ).pk
        rule_set = rules.save_rule_set(values={"name": "Base", "max_step": "0.1"})
        rules.save_rule_set(rule_set=rule_set, values={"max_step": "0.15"})  # a second version
        ids["rule-sets"] = rule_set.pk
        ids["DELETE rule-sets"] = rules.save_rule_set(values={"name": "Spare"}).pk
        ids["schedules"] = f.RepriceScheduleFactory(tenant=tenant, enabled=False).pk
        ids["DELETE schedules"] = f.RepriceScheduleFactory(tenant=tenant).pk
        f.PublicationFactory(tenant=tenant)  # no file: `download` is null
        published = f.PublicationFactory(tenant=tenant, status="succeeded")
        published.file.save("prices-seed.csv", ContentFile(b"sku,new_price\r\nA,1.00\r\n"))
        ids["publications"] = published.pk
        ids["price-changes"] = f.PriceChangeFactory(
            tenant=tenant, product=product, job=job, publication=published
        ).pk
        experiment = f.ExperimentFactory(tenant=tenant)
        f.ExperimentUnitFactory(tenant=tenant, experiment=experiment, product=product)
        ids["experiments"] = experiment.pk
        ids["audit-events"] = f.AuditEventFactory(tenant=tenant).pk
        f.DailyKpiFactory(tenant=tenant, product=product)
        ids["alerts"] = f.AlertFactory(tenant=tenant).pk
        # an offer in force (the competitor view reads the last 14 days), its move from the
        # seeded one, an open undercut alert and a cleared one (its nullable fields set)
        now = timezone.now()
        ids["competitors"] = f.CompetitorOfferFactory(
            tenant=tenant, product=product, price="9.00", observed_at=now
        ).pk
        f.CompetitorOfferFactory(tenant=tenant, product=product, price="9.50",
                                 observed_at=now - timedelta(days=1))  # fmt: skip
        ids["undercut-alerts"] = f.UndercutAlertFactory(tenant=tenant, product=product).pk
        f.UndercutAlertFactory(tenant=tenant, product=product, status="resolved",
                               resolved_at=now, resolution="the gap is within the threshold now",
                               url="https://rival.example/p/1")  # fmt: skip
        ids["connections"] = f.ConnectionFactory(tenant=tenant).pk
        ids["invitations"] = invite_member(
            tenant=tenant,
            actor=owner,
            actor_role=Role.OWNER,
            email="invitee@fuzz.example.com",
            role=Role.VIEWER,
        ).invitation.pk
        spare = f.UserFactory(email=f"spare@{tenant.slug}.example.com")
        ids["members"] = Membership.objects.create(tenant=tenant, user=spare, role="viewer").pk
        ids["api-keys"] = create_api_key(
            tenant=tenant, actor=owner, actor_role=Role.OWNER, name="spare", role=Role.VIEWER
        ).api_key.pk
        assert Publication.objects.filter(pk=published.pk).exclude(file="").exists()
    return {
        ("DELETE", "rule-sets"): ids.pop("DELETE rule-sets"),
        ("DELETE", "schedules"): ids.pop("DELETE schedules"),
        ("POST", "recommendations/reject"): ids.pop("recommendations/reject"),
        **{("*", resource): pk for resource, pk in ids.items()},
    }


def example_id(ids: dict[tuple[str, str], int], method: str, path: str) -> int | None:
    """The seeded object an operation names: by method and resource/action, method and
    resource, or resource."""
    resource, *rest = path.removeprefix("/api/v1/").strip("/").split("/")
    keys = [(method.upper(), resource), ("*", resource)]
    if len(rest) > 1:
        keys.insert(0, (method.upper(), f"{resource}/{rest[-1]}"))
    return next((ids[key] for key in keys if key in ids), None)


def with_examples(raw: dict, ids: dict[tuple[str, str], int]) -> dict:
    """The schema with each `{id}` path parameter's example set to a seeded object's id."""
    for path, operations in raw["paths"].items():
        for method, operation in operations.items():
            pk = example_id(ids, method, path) if isinstance(operation, dict) else None
            for parameter in operation.get("parameters", []) if pk else []:
                if parameter["in"] == "path" and parameter["name"] == "id":
                    parameter["example"] = pk
    return raw


# --- who calls -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """How a role calls: headers and cookies."""

    headers: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)

    def all_headers(self) -> dict[str, str]:
        """The cookies as a Cookie header too (for clients that take headers only)."""
        if not self.cookies:
            return self.headers
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return {**self.headers, "Cookie": cookie}


def credentials(tenant, owner, keys: dict[str, str]) -> dict[str, Caller]:
    """How each role calls: with its API key, or the owner with a portal session (and its CSRF
    token, so that its writes pass the CSRF check) naming the tenant in `X-Tenant`."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(owner)
    csrf = secrets.token_hex(16)  # 32 characters: a valid unmasked CSRF secret
    callers = {role: Caller({"Authorization": f"Api-Key {keys[role]}"}) for role in KEY_ROLES}
    callers[Role.OWNER] = Caller(
        headers={"X-CSRFToken": csrf, "X-Tenant": tenant.slug},
        cookies={
            settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value,
            settings.CSRF_COOKIE_NAME: csrf,
        },
    )
    return callers


# --- the run ---------------------------------------------------------------------------------


def run(
    base_url: str,
    callers: dict[str, Caller],
    examples: dict[tuple[str, str], int],
    *,
    max_examples: int,
    phases: list[str],
    seed: int = 0,
    roles: tuple[str, ...] = ROLES,
) -> Tally:
    """One engine run (as `schemathesis run`) per role against the app at `base_url`."""
    raw = requests.get(base_url + SCHEMA_PATH, headers={"Accept": "application/json"}, timeout=60)
    raw.raise_for_status()
    document = with_examples(raw.json(), examples)
    tally = Tally()
    for role in roles:
        settings = config(
            max_examples=max_examples,
            phases=phases,
            seed=seed,
            session=bool(callers[role].cookies),
        )
        schema = schemathesis.openapi.from_dict(document, config=settings)
        schema.config.update(base_url=base_url, headers=callers[role].all_headers())
        _collect(from_schema(schema).execute(), role, tally)
    return tally


def _collect(stream, role: str, tally: Tally) -> None:
    for event in stream:
        if isinstance(event, events.ScenarioFinished) and event.status != Status.SKIP:
            tally.operations.add(event.label)
            tally.cases += len(event.recorder.cases)
            tally.requests += len(event.recorder.interactions)
            tally.by_role[role] += len(event.recorder.interactions)
            seen = set()
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status != Status.FAILURE or check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    kind = kind_of(check.name, event.recorder.cases[case_id].value)
                    if (kind, failure.title, failure.message) in seen:
                        continue
                    seen.add((kind, failure.title, failure.message))
                    tally.failures.append(
                        Failure(
                            role=role,
                            operation=event.label,
                            kind=kind,
                            title=failure.title,
                            detail=f"{failure.message}\n{check.failure_info.code_sample}",
                        )
                    )
        elif isinstance(event, events.NonFatalError):
            tally.errors.append(f"[{role}] {event.label}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            tally.errors.append(f"[{role}] the run stopped: {event.exception!r}")
