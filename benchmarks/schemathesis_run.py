"""The API fuzzed against its own OpenAPI schema by schemathesis, as each role: the long run of
`tests/web/test_schemathesis.py` (the same seeded objects and checks, `tests/web/api_fuzz.py`),
with more examples and every phase, over HTTP to the app served in this process.

    .venv/bin/python benchmarks/schemathesis_run.py [--max-examples 10]
        [--phases examples,coverage,fuzzing,stateful] [--roles viewer,analyst,approver,admin,owner]

A fresh tenant is seeded (deleted afterwards); jobs the API queues stay queued (an in-memory
broker, nothing runs them). Prints the requests sent, the operations tested and each kind of
failure; exits 1 when any failure but a leniently parsed JSON body was found.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pricing_saas.settings.local")
os.environ.setdefault("API_THROTTLE_RATE", "1000000/minute")  # a fuzzer is not a client to slow
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"  # a queued job waits for a worker ...
os.environ["CELERY_BROKER_URL"] = "memory://"  # ... and none will come


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(app) -> tuple[Server, str]:
    server = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-examples", type=int, default=10)
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--roles", default="viewer,analyst,approver,admin,owner")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import django

    django.setup()
    import logging

    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"  # fuzzed invitations
    # As production serves (DEBUG off): a path no route matches gets the API's JSON 404, not
    # Django's debug page.
    settings.DEBUG = False

    from django.core.wsgi import get_wsgi_application

    from pricing_saas.portal.services import create_api_key
    from tenants.context import tenant_context
    from tenants.models import User
    from tenants.roles import Role
    from tenants.services import create_tenant, delete_tenant
    from tests.web import api_fuzz

    logging.disable(logging.WARNING)  # every refused request is a logged 4xx
    slug = f"bench-schemathesis-{os.getpid()}"
    owner = User.objects.create_user(email=f"owner@{slug}.example.com", password=None)
    tenant = create_tenant(name="Schemathesis benchmark", slug=slug, owner=owner)
    server = None
    try:
        keys = {}
        with tenant_context(tenant):
            for role in api_fuzz.KEY_ROLES:
                keys[role] = create_api_key(
                    tenant=tenant, actor=owner, actor_role=Role.OWNER, name=role, role=role
                ).key
        examples = api_fuzz.seed(tenant, owner)
        callers = api_fuzz.credentials(tenant, owner, keys)
        server, base_url = serve(get_wsgi_application())
        started = time.perf_counter()
        tally = api_fuzz.run(
            base_url,
            callers,
            examples,
            max_examples=args.max_examples,
            phases=args.phases.split(","),
            seed=args.seed,
            roles=tuple(args.roles.split(",")),
        )
        seconds = time.perf_counter() - started
    finally:
        if server is not None:
            server.shutdown()
        delete_tenant(tenant=tenant)
        User.objects.filter(email__endswith=f"@{slug}.example.com").delete()

    print(f"schemathesis {api_fuzz.schemathesis.__version__}, phases {args.phases}, "
          f"max examples {args.max_examples}, seed {args.seed}, roles {args.roles}")  # fmt: skip
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| requests | {tally.requests:,} |")
    print(f"| test cases | {tally.cases:,} |")
    print(f"| operations tested | {len(tally.operations)} |")
    print(f"| requests per role | {', '.join(f'{r} {n:,}' for r, n in tally.by_role.items())} |")
    for kind, label in api_fuzz.KINDS.items():
        print(f"| {label} | {tally.count(kind)} |")
    others = [f for f in tally.failures if f.kind not in api_fuzz.KINDS]
    print(f"| other check failures | {len(others)} |")
    print(f"| run errors | {len(tally.errors)} |")
    print(f"| time | {seconds:.0f} s |")
    if tally.failures:
        from collections import Counter

        print("\n| check | operation | failures |")
        print("| --- | --- | --- |")
        grouped = Counter((f.kind, f.operation) for f in tally.failures)
        for (kind, operation), count in sorted(grouped.items(), key=lambda kv: -kv[1]):
            print(f"| {kind} | {operation} | {count} |")
    if tally.failures or tally.errors:
        print("\n" + tally.report(tally.failures))
    return 1 if tally.gated() or tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
