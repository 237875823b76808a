"""The portal shell, as a person uses it: signup, login, switcher, team, keys, invitations."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User
from tenants.roles import Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

STRONG = "plum-lantern-42-quartz"


def test_signup_creates_tenant_owner_and_logs_in():
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {
            "company": "Acme Shoes",
            "email": "Ana@Acme.example",
            "password": STRONG,
            "full_name": "Ana",
        },
    )
    assert response.status_code == 302
    tenant = Tenant.objects.get(name="Acme Shoes")
    assert tenant.slug == "acme-shoes"
    user = User.objects.get(email="ana@acme.example")
    with tenant_context(tenant):
        assert Membership.objects.get(user=user).role == Role.OWNER
    page = client.get("/")
    assert page.status_code == 200 and "Acme Shoes" in page.content.decode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"company": "", "email": "a@b.example", "password": STRONG}, "company"),
        ({"company": "X", "email": "not-an-email", "password": STRONG}, "email"),
        ({"company": "X", "email": "a@b.example", "password": "123"}, "password"),
        ({"company": "X" * 500, "email": "a@b.example", "password": STRONG}, "company"),
        ({"company": "X", "email": "a" * 300 + "@b.example", "password": STRONG}, "email"),
    ],
)
def test_signup_bad_input_is_400_and_creates_nothing(data, field):
    response = Client().post("/accounts/signup/", data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert Tenant.objects.count() == 0 and User.objects.count() == 0


def test_signup_with_existing_email_is_refused(world_a):
    response = Client().post(
        "/accounts/signup/",
        {"company": "Dup", "email": world_a.users["owner"].email.upper(), "password": STRONG},
    )
    assert response.status_code == 400
    assert not Tenant.objects.filter(name="Dup").exists()


def test_login_logout_and_anonymous_redirect(world_a):
    client = Client()
    assert client.get("/").status_code == 302
    response = client.post(
        "/accounts/login/",
        {"username": world_a.users["owner"].email, "password": "correct horse battery"},
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_wrong_password_is_rejected(world_a):
    response = Client().post(
        "/accounts/login/", {"username": world_a.users["owner"].email, "password": "nope"}
    )
    assert response.status_code == 200 and response.context["form"].errors


def test_password_reset_sends_a_working_link(world_a):
    client = Client()
    client.post("/accounts/password_reset/", {"email": world_a.users["viewer"].email})
    assert len(mail.outbox) == 1
    link = re.search(r"http://\S+/accounts/reset/\S+/", mail.outbox[0].body).group(0)
    path = link.split("testserver", 1)[1]
    response = client.get(path, follow=True)
    form_path = response.redirect_chain[-1][0]
    response = client.post(form_path, {"new_password1": STRONG, "new_password2": STRONG})
    assert response.status_code == 302
    assert Client().login(username=world_a.users["viewer"].email, password=STRONG)


def test_tenant_switcher_moves_between_own_tenants(world_a, world_b):
    user = world_a.users["analyst"]
    MembershipFactory(tenant=world_b.tenant, user=user, role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    page = client.get("/").content.decode()
    assert 'name="tenant"' in page and world_b.tenant.slug in page
    client.post("/switch/", {"tenant": world_b.tenant.slug})
    page = client.get("/team/").content.decode()
    assert world_b.users["owner"].email in page and world_a.users["owner"].email not in page


def test_user_without_tenant_sees_explanation(user):
    client = Client()
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 403 and "don't belong" in response.content.decode()


def test_team_invite_and_new_person_accepts(world_a, django_capture_on_commit_callbacks):
    owner = Client()
    owner.force_login(world_a.users["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post("/team/invite/", {"email": "new@shop.example", "role": "approver"})
    assert response.status_code == 302
    link = re.search(r"http://\S+/invite/\S+/", mail.outbox[0].body).group(0)
    path = "/" + link.split("/", 3)[3]
    guest = Client()
    assert "Join Alpha Store" in guest.get(path).content.decode()
    assert guest.post(path, {"password": STRONG, "full_name": "Nia"}).status_code == 302
    with tenant_context(world_a.tenant):
        assert Membership.objects.get(user__email="new@shop.example").role == Role.APPROVER
    assert guest.get(path).status_code == 404  # used up


@pytest.mark.parametrize("token", ["junk", "0123456789abcdef.wrongsecretwrongsecret", "x" * 400])
def test_bad_invitation_tokens_are_404(db, token):
    response = Client().get(f"/invite/{token}/")
    assert response.status_code == 404


def test_invitation_for_someone_else_is_refused(
    world_a, world_b, django_capture_on_commit_callbacks
):
    owner = Client()
    owner.force_login(world_a.users["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        owner.post("/team/invite/", {"email": "target@shop.example", "role": "viewer"})
    path = "/" + re.search(r"http://\S+/invite/\S+/", mail.outbox[0].body).group(0).split("/", 3)[3]
    intruder = Client()
    intruder.force_login(world_b.users["viewer"])
    intruder.post(path)
    with tenant_context(world_a.tenant):
        assert not Membership.objects.filter(user=world_b.users["viewer"]).exists()


def test_api_key_page_shows_key_once(world_a):
    client = Client()
    client.force_login(world_a.users["owner"])
    response = client.post("/keys/", {"name": "shopify", "role": "analyst"})
    key = re.search(r'<code id="new-key">([^<]+)</code>', response.content.decode()).group(1)
    assert key.startswith("pk_")
    assert key not in client.get("/keys/").content.decode()


def test_api_key_page_rejects_oversize_name(world_a):
    client = Client()
    client.force_login(world_a.users["owner"])
    response = client.post("/keys/", {"name": "n" * 500, "role": "viewer"})
    assert response.status_code == 400


def test_static_assets_come_from_the_registry_package(world_a):
    client = Client()
    client.force_login(world_a.users["owner"])
    assert "vendor/htmx/htmx.min.js" in client.get("/").content.decode()
    from django.contrib.staticfiles import finders

    assert finders.find("vendor/htmx/htmx.min.js"), "run npm install (make setup)"
