"""The load of `benchmarks/load.py`: merchants' people and integrations on many tenants at once.

Each simulated user belongs to one tenant (the tenants, their API keys, portal logins and SKU
ids come from the JSON file in LOAD_TENANTS) and mixes, by weight:

- recommendation lists through the API (newest job, 50 a page, some filtered);
- SKU pages of the portal (a session logged in with the tenant's analyst);
- 1,000-row bulk upserts of the catalog through the API (prices changed, same SKUs);
- approvals of single recommendations, through the API;
- CSV exports of the catalog through the API.

An answer other than the one expected (2xx; 409 for an approval a parallel user took first)
counts as a failure.
"""

from __future__ import annotations

import json
import os
import random
import re

import requests
from locust import HttpUser, between, task

TENANTS = json.loads(open(os.environ["LOAD_TENANTS"]).read())  # noqa: SIM115


class Merchant(HttpUser):
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.tenant = random.choice(TENANTS)
        self.api = {"Authorization": f"Api-Key {self.tenant['key']}"}  # an approver's
        self.integration = {"Authorization": f"Api-Key {self.tenant['writer']}"}  # an analyst's
        # The portal login (a password hash costs about a second on purpose) happens once per
        # user, outside the statistics: the figures are the steady load, not the sign-ins.
        with requests.Session() as session:
            login = session.get(self.host + "/accounts/login/", timeout=120)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
            done = session.post(
                self.host + "/accounts/login/",
                data={
                    "username": self.tenant["email"],
                    "password": self.tenant["password"],
                    "csrfmiddlewaretoken": token.group(1) if token else "",
                },
                headers={"Referer": self.host + "/accounts/login/"},
                timeout=120,
            )
            done.raise_for_status()
            self.client.cookies.update(session.cookies)

    @task(10)
    def recommendations(self) -> None:
        where = random.choice(["", "&status=pending", "&category=c1", "&flagged=true"])
        self.client.get(
            f"/api/v1/recommendations/?page_size=50{where}",
            headers=self.api,
            name="/api/v1/recommendations/",
        )

    @task(6)
    def sku_page(self) -> None:
        pk = random.choice(self.tenant["products"])
        with self.client.get(
            f"/pricing/sku/{pk}/", name="/pricing/sku/[id]/", catch_response=True
        ) as answer:
            if "/accounts/login/" in answer.url:  # sent to the login page: not the SKU page
                answer.failure("not logged in")

    @task(1)
    def bulk_upsert(self) -> None:
        rows = [
            {"sku": sku, "title": f"Load product {sku}", "price": round(random.uniform(5, 50), 2)}
            for sku in random.sample(self.tenant["skus"], min(1000, len(self.tenant["skus"])))
        ]
        self.client.post(
            "/api/v1/products/bulk/",
            json=rows,
            headers=self.integration,
            name="/api/v1/products/bulk/",
        )

    @task(3)
    def approve(self) -> None:
        pk = random.choice(self.tenant["recommendations"])
        with self.client.post(
            f"/api/v1/recommendations/{pk}/approve/",
            json={},
            headers=self.api,
            name="/api/v1/recommendations/[id]/approve/",
            catch_response=True,
        ) as answer:
            if answer.status_code in (200, 409):  # 409: already decided (by another user)
                answer.success()

    @task(1)
    def export(self) -> None:
        self.client.get(
            "/api/v1/exports/products/", headers=self.api, name="/api/v1/exports/products/"
        )
