"""Tenants (merchants), users, memberships with roles, invitations and API keys.

Layer 1 of tenant isolation lives here: `TenantOwned`, whose default manager refuses to run
without a tenant in the current context, and whose `unscoped` manager is the explicit way out.
"""

from __future__ import annotations

import zoneinfo

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from .context import get_current_tenant, require_current_tenant
from .roles import Role

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lower-case letters, digits and inner hyphens.",
)
CURRENCY_VALIDATOR = RegexValidator(r"^[A-Z]{3}$", "Use an ISO 4217 code such as EUR or USD.")


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin"
        )


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Logs in with an e-mail address; belongs to tenants through Membership."""

    email = models.EmailField(unique=True, max_length=254)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    def __str__(self) -> str:
        return self.email


class Tenant(models.Model):
    """A merchant. Not tenant-owned itself: the control plane that every other row points to."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=50, unique=True, validators=[SLUG_VALIDATOR])
    default_currency = models.CharField(
        max_length=3, default="USD", validators=[CURRENCY_VALIDATOR]
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class TenantQuerySet(models.QuerySet):
    """A queryset that was built with no tenant in the context: it may be composed (libraries
    inspect `.query` at import time) but raises TenantNotSet as soon as it would touch the
    database. Fail closed, lazily."""

    _tenant_missing = False

    def _clone(self):
        clone = super()._clone()
        clone._tenant_missing = self._tenant_missing
        return clone

    def _refuse_unscoped(self) -> None:
        if self._tenant_missing:
            require_current_tenant()  # raises TenantNotSet with the explanation

    def _fetch_all(self):
        self._refuse_unscoped()
        super()._fetch_all()

    def iterator(self, *args, **kwargs):
        self._refuse_unscoped()
        return super().iterator(*args, **kwargs)

    def count(self):
        self._refuse_unscoped()
        return super().count()

    def exists(self):
        self._refuse_unscoped()
        return super().exists()

    def aggregate(self, *args, **kwargs):
        self._refuse_unscoped()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs):
        self._refuse_unscoped()
        return super().update(**kwargs)

    def delete(self):
        self._refuse_unscoped()
        return super().delete()

    def explain(self, *args, **kwargs):
        self._refuse_unscoped()
        return super().explain(*args, **kwargs)


class TenantScopedManager(models.Manager.from_queryset(TenantQuerySet)):
    """Default manager of tenant-owned models: filters by the current tenant; without one, the
    queryset raises TenantNotSet when it is evaluated (fail closed)."""

    def get_queryset(self):
        queryset = super().get_queryset()
        tenant = get_current_tenant()
        if tenant is None:
            queryset._tenant_missing = True
            return queryset
        return queryset.filter(tenant=tenant)

    def none(self):
        # An empty queryset reads nothing, so it needs no tenant (schema generation uses it).
        queryset = super().get_queryset().none()
        return queryset


class TenantOwned(models.Model):
    """Abstract base of every tenant-owned model.

    - `objects` is scoped to the tenant in the current context and raises TenantNotSet without one.
    - `unscoped` is the explicitly named way to query across tenants (admin, migrations, system
      jobs); row-level security still applies to it in the database.
    - save() fills `tenant` from the context and refuses to write a row for another tenant.
    - In the database every key of its table holds tenant_id: the primary key is
      (tenant_id, id) while Django's stays `id`, unique constraints start with `tenant`, and a
      foreign key to another tenant-owned model has `db_constraint=False` and a composite
      constraint made by its migration (tenants/keys.py, docs/citus.md).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # Extra SELECT-only row-level-security conditions (SQL) for narrow pre-tenant lookups.
    rls_extra_select: tuple[str, ...] = ()

    objects = TenantScopedManager()
    unscoped = models.Manager()  # noqa: DJ012 (a second manager, not a field)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        current = get_current_tenant()
        if self.tenant_id is None:
            self.tenant = require_current_tenant()
        elif current is not None and current.pk != self.tenant_id:
            raise PermissionError(
                f"refusing to save a {type(self).__name__} of tenant {self.tenant_id} "
                f"while tenant {current.pk} is current"
            )
        super().save(*args, **kwargs)


class Membership(TenantOwned):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    rls_extra_select = ("user_id = NULLIF(current_setting('app.user_id', true), '')::bigint",)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user")
        ]
        indexes = [models.Index(fields=["user"], name="membership_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.tenant_id}:{self.role}"


class Invitation(TenantOwned):
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    # Unique with the tenant only (a distributed table's unique keys hold tenant_id,
    # docs/citus.md): lookup_id has 64 random bits and find_invitation() takes the one of its
    # rows whose token_hash matches, so a repeat in another tenant is harmless.
    token_hash = models.CharField(max_length=64)
    lookup_id = models.CharField(max_length=16)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    rls_extra_select = ("lookup_id = NULLIF(current_setting('app.invitation', true), '')",)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "token_hash"], name="invitation_unique_token"
            ),
            models.UniqueConstraint(
                fields=["tenant", "lookup_id"], name="invitation_unique_lookup"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "email"], name="invitation_tenant_email_idx"),
            models.Index(fields=["lookup_id"], name="invitation_lookup_idx"),  # before a tenant
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.role})"

    @property
    def is_open(self) -> bool:
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )


class ApiKey(TenantOwned):
    """An API key: `<prefix>.<secret>`. The prefix is public and indexed; only a SHA-256 of the
    secret is stored (the secret is 256 random bits, so a slow hash adds nothing)."""

    name = models.CharField(max_length=100)
    # Unique with the tenant (docs/citus.md); create_api_key also draws a prefix no other
    # tenant holds, and authenticate_api_key() takes the row whose secret matches.
    prefix = models.CharField(max_length=16)
    secret_hash = models.CharField(max_length=64)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    rls_extra_select = ("prefix = NULLIF(current_setting('app.key_prefix', true), '')",)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "prefix"], name="apikey_unique_prefix")
        ]
        indexes = [models.Index(fields=["prefix"], name="apikey_prefix_idx")]  # authentication

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditEvent(TenantOwned):
    """One recorded change: who, when, what, and the state before and after. Append-only."""

    created_at = models.DateTimeField(auto_now_add=True)
    actor_user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=200)  # e-mail, "api key pk_… (name)" or "system"
    action = models.CharField(max_length=64)  # e.g. rules.update, recommendation.approve
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    summary = models.CharField(max_length=500, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="audit_tenant_created_idx"),
            models.Index(fields=["tenant", "action"], name="audit_tenant_action_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action}"
