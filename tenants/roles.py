"""Roles and the one permission map that every check (portal, API, services) reads."""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    APPROVER = "approver", "Approver"
    ANALYST = "analyst", "Analyst"
    VIEWER = "viewer", "Viewer"


class Perm:
    VIEW = "view"  # read everything of the tenant
    IMPORT_DATA = "import_data"  # upload catalog, sales, competitor prices
    EDIT_RULES = "edit_rules"  # pricing rules, schedules
    TRAIN_MODELS = "train_models"  # start training, promote and roll back models
    RUN_JOBS = "run_jobs"  # start reprice jobs
    APPROVE = "approve"  # approve or reject recommendations
    PUBLISH = "publish"  # publish, roll back, kill switch
    MANAGE_SETTINGS = "manage_settings"  # tenant settings, approval policy, integrations
    MANAGE_MEMBERS = "manage_members"  # invite, change roles, remove members
    MANAGE_KEYS = "manage_keys"  # create and revoke API keys
    VIEW_AUDIT = "view_audit"  # read and export the audit log


_VIEWER = {Perm.VIEW}
_ANALYST = _VIEWER | {Perm.IMPORT_DATA, Perm.EDIT_RULES, Perm.TRAIN_MODELS, Perm.RUN_JOBS}
_APPROVER = _VIEWER | {Perm.APPROVE, Perm.PUBLISH}
_ADMIN = _ANALYST | _APPROVER | {Perm.MANAGE_SETTINGS}
_OWNER = _ADMIN | {Perm.MANAGE_MEMBERS, Perm.MANAGE_KEYS, Perm.VIEW_AUDIT}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(_OWNER),
    Role.ADMIN: frozenset(_ADMIN),
    Role.APPROVER: frozenset(_APPROVER),
    Role.ANALYST: frozenset(_ANALYST),
    Role.VIEWER: frozenset(_VIEWER),
}


def has_perm(role: str | None, perm: str) -> bool:
    return role is not None and perm in ROLE_PERMISSIONS.get(role, frozenset())


# API keys act for integrations, never as an owner.
# What each permission lets a member do, in the words the Team page uses.
PERM_LABELS: dict[str, str] = {
    Perm.VIEW: "see everything of the merchant: catalog, recommendations, jobs, performance",
    Perm.IMPORT_DATA: "import products, sales and competitor prices",
    Perm.EDIT_RULES: "edit pricing rules and reprice schedules",
    Perm.TRAIN_MODELS: "train, promote and roll back models",
    Perm.RUN_JOBS: "run reprice jobs and price tests",
    Perm.APPROVE: "approve or reject recommended prices",
    Perm.PUBLISH: "publish prices, roll them back, use the kill switch",
    Perm.MANAGE_SETTINGS: "change the approval and alert policies and connections",
    Perm.MANAGE_MEMBERS: "invite members, change their roles, remove them",
    Perm.MANAGE_KEYS: "create and revoke API keys",
    Perm.VIEW_AUDIT: "read and export the audit log",
}


def role_descriptions() -> list[tuple[str, list[str]]]:
    """(role label, what it may do) for every role, most powerful first."""
    return [
        (label, [PERM_LABELS[p] for p in PERM_LABELS if p in ROLE_PERMISSIONS[value]])
        for value, label in Role.choices
    ]


API_KEY_ROLE_CHOICES = [c for c in Role.choices if c[0] != Role.OWNER]
