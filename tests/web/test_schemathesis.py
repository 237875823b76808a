"""The API answers as its OpenAPI schema says, for every role (schemathesis; the shared set-up is
in `tests/web/api_fuzz.py`, the long run is `benchmarks/schemathesis_run.py`).

Every operation is called in-process through the WSGI application, on the test database, with
objects of every resource seeded (their ids are the schema's examples): as each role, once
plainly (every read with a seeded id and no filter, so that each response shape is checked on
the seeded nulls) and with schemathesis's examples and generated cases, valid and malformed.
None may be a server error, answer an undocumented status code or media type, or return a body
that violates the schema; a malformed query or path parameter must be refused.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from rest_framework.test import APIClient
from schemathesis.core.failures import FailureGroup

from tenants.roles import Role

from .api_fuzz import ROLES, config, credentials, example_id, kind_of, seed, with_examples

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 1  # generated cases per operation and role, besides the examples
APP = get_wsgi_application()


@pytest.fixture
def role(request):
    return request.param


@pytest.fixture
def seeded(world_a):
    """World A with an object of every resource; its owner calls with a session."""
    owner = world_a.users[Role.OWNER]
    examples = seed(world_a.tenant, owner)
    return examples, credentials(world_a.tenant, owner, world_a.keys)


@contextmanager
def in_this_transaction():
    """The request runs in this thread, inside the test's transaction: as Django's test client
    does, the connection is not closed when the request starts or ends."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(seeded):
    document = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    schema = schemathesis.openapi.from_dict(
        with_examples(document, seeded[0]),
        config=config(max_examples=MAX_EXAMPLES, phases=["examples", "fuzzing"]),
    )
    schema.app = APP  # every call, and every check's own probes, go to the app in-process
    return schema


def call_and_check(case, caller):
    """Call the app as `caller` and run the checks; a malformed JSON body that DRF reads
    leniently (see api_fuzz.kind_of) is the one failure let through."""
    try:
        with in_this_transaction():
            response = case.call(headers=caller.headers, cookies=caller.cookies)
            # The checks learn of the session from the Cookie header: explicit credentials.
            case.validate_response(response, headers=caller.all_headers())
    except FailureGroup as group:
        gated = [
            f
            for f in group.exceptions
            if kind_of(f.checks[0], case) != "negative_data_rejection:body"
        ]
        if gated:
            raise FailureGroup(gated, str(group)) from None
    return response


@pytest.mark.parametrize("role", ROLES, indirect=True)
def test_every_read_answers_as_the_schema_says(role, api_schema, seeded):
    examples, callers = seeded
    statuses = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET":
            continue
        if "{kind}" in operation.path:
            path = {"kind": "products"}
        elif "{id}" in operation.path:
            path = {"id": example_id(examples, "GET", operation.path)}
        else:
            path = None
        response = call_and_check(operation.Case(path_parameters=path), callers[role])
        statuses[operation.path] = response.status_code
    assert len(statuses) == 56
    # Every seeded object was found: a read answers 200, or 403 where the role may not read.
    owner_only = {p for p in statuses if p.startswith(("/api/v1/api-keys/", "/api/v1/audit-"))}
    owner_only |= {"/api/v1/invitations/", "/api/v1/invitations/{id}/"}
    settings_only = {p for p in statuses if p.startswith("/api/v1/connections/")}
    expected = {
        p: 403
        if (p in owner_only and role != Role.OWNER)
        or (p in settings_only and role not in (Role.OWNER, Role.ADMIN))
        else 200
        for p in statuses
    }
    assert statuses == expected


lazy_schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.parametrize("role", ROLES, indirect=True)
@pytest.mark.usefixtures("role")  # the lazy schema's test takes its fixtures by name
@lazy_schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first failure as found
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_answer_as_the_schema_says(case, role, seeded):
    call_and_check(case, seeded[1][role])
