"""System checks of the tenancy core.

tenants.E001: a foreign key between two tenant-owned models must have `db_constraint=False`.
In the database it is the composite (tenant_id, x_id) -> (tenant_id, id) that the app's
migration creates with `tenants.keys.tenant_foreign_key()`; a single-column constraint could
not even be created, since `id` alone is no key there (docs/citus.md).

tenants.E002: a many-to-many field of a tenant-owned model needs a `through` model that is
tenant-owned itself: Django's own through table would have no tenant_id.
"""

from __future__ import annotations

from django.apps import apps
from django.core import checks


def _tenant_owned(model) -> bool:
    from .models import TenantOwned

    return issubclass(model, TenantOwned) and not model._meta.abstract


@checks.register(checks.Tags.models)
def tenant_foreign_keys(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    for model in apps.get_models():
        if not _tenant_owned(model) or model._meta.proxy:
            continue
        for field in model._meta.local_fields:
            if not (field.many_to_one or field.one_to_one):
                continue
            if _tenant_owned(field.related_model) and field.db_constraint:
                errors.append(
                    checks.Error(
                        f"{model._meta.label}.{field.name} refers to the tenant-owned "
                        f"{field.related_model._meta.label} with a single-column constraint",
                        hint="Give it db_constraint=False and create the composite key in its "
                        "migration with tenants.keys.tenant_foreign_key() (docs/citus.md).",
                        obj=field,
                        id="tenants.E001",
                    )
                )
        for field in model._meta.local_many_to_many:
            if _tenant_owned(field.remote_field.through):
                continue
            errors.append(
                checks.Error(
                    f"{model._meta.label}.{field.name}: a many-to-many table of a tenant-owned "
                    "model needs a through model with a tenant_id",
                    hint="Use an explicit through model that inherits TenantOwned.",
                    obj=field,
                    id="tenants.E002",
                )
            )
    return errors
