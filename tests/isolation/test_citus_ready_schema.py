"""The schema can be distributed by tenant_id on Citus (docs/citus.md): every tenant-owned table's
primary key and unique keys hold tenant_id, every foreign key between tenant-owned tables pairs
tenant_id with tenant_id, and the tables without tenant_id are the global ones listed here (the
reference tables, and two that stay local to the coordinator).

Read from the database (pg_constraint, pg_index through `tenants.citus`), not from a list, so a
new table that breaks the rule fails here; the checker is itself checked against temporary tables
that break each rule."""

from __future__ import annotations

import io

import pytest
from django.apps import apps
from django.core import checks
from django.core.management import call_command
from django.db import connection

from tenants.checks import tenant_foreign_keys
from tenants.citus import (
    LOCAL_TABLES,
    distribution_statements,
    foreign_keys,
    key_problems,
    tables,
    unique_keys,
)
from tenants.models import TenantOwned

pytestmark = pytest.mark.django_db

# Every table without a tenant_id column, and why it has none. On Citus each is a reference table
# (a copy on every node: distributed tables may refer to it) unless tenants.citus.LOCAL_TABLES
# keeps it local to the coordinator.
GLOBAL_TABLES = {
    "tenants_tenant": "the tenants themselves: every tenant_id refers to it",
    "tenants_user": "a person may belong to several tenants (through tenants_membership)",
    "tenants_user_groups": "Django's permission groups of a user: not used by tenant roles",
    "tenants_user_user_permissions": "Django's per-user permissions: not used by tenant roles",
    "auth_group": "Django's permission groups: installation-wide",
    "auth_group_permissions": "Django's permission groups: installation-wide",
    "auth_permission": "Django's permissions: one per model, installation-wide",
    "django_content_type": "one row per model, installation-wide",
    "django_admin_log": "the Django admin's log of staff actions: staff are not tenant members",
    "django_migrations": "the applied migrations of the installation",
    "django_session": "a user's session (which may name the tenant chosen); a user is global",
    # django-celery-beat: the scheduler reads every task of the installation. A tenant's reprice
    # schedule is the tenant-owned pricing_repriceschedule; its task (named tenant-<id>-...) is
    # derived from it and made again from it (pricing.schedules.sync_periodic_task).
    "django_celery_beat_periodictask": "the beat scheduler's tasks, derived from tenant schedules",
    "django_celery_beat_periodictasks": "the beat scheduler's change marker",
    "django_celery_beat_crontabschedule": "cron expressions, shared by every task that uses one",
    "django_celery_beat_intervalschedule": "intervals, shared by every task that uses one",
    "django_celery_beat_clockedschedule": "one-off times, shared by every task that uses one",
    "django_celery_beat_solarschedule": "solar events, shared by every task that uses one",
}

# Foreign keys between tenant-owned models with no constraint in the database at all (neither
# single-column before nor composite now), and why. Every other one must be composite there.
UNCONSTRAINED = {
    # pricing_saas/catalog/models.py: a per-row check dominated bulk import time.
    "catalog.SalesRecord.product": "bulk imports",
    "catalog.CompetitorOffer.product": "bulk imports",
    "kpi.DailyKpi.product": "written set-based with the sales (kpi/services.py)",
    # Links to a product made without a constraint from the start, as the catalog's: a product's
    # deletion cascades through the ORM. Not this change's to add.
    "ml.Elasticity.product": "product link, no constraint from the start",
    "ml.ReferencePrice.product": "product link, no constraint from the start",
    "pricing.Recommendation.product": "product link, no constraint from the start",
    "pricing.PriceChange.product": "product link, no constraint from the start",
    "pricing.PriceLock.product": "product link, no constraint from the start",
    "experiments.ExperimentUnit.product": "product link, no constraint from the start",
}


def _tenant_models():
    return [m for m in apps.get_models() if issubclass(m, TenantOwned)]


def _label(field) -> str:
    return f"{field.model._meta.label}.{field.name}"


def test_the_tenant_owned_tables_can_be_distributed_by_tenant_id():
    assert key_problems(connection) == []


def test_every_primary_and_unique_key_of_a_tenant_table_holds_tenant_id():
    # What key_problems checks, spelled out: the primary keys are (tenant_id, id) or a natural
    # key led by tenant_id, and every unique key (constraint or index, partial or not) has it.
    owned = tables(connection)
    keys = [k for k in unique_keys(connection) if owned[k.table]]
    primary = {k.table: k.columns for k in keys if k.kind == "primary key"}
    assert set(primary) == {t for t, tenant in owned.items() if tenant}
    assert all(columns[0] == "tenant_id" for columns in primary.values()), primary
    assert primary["pricing_recommendation"] == ("tenant_id", "id")
    assert primary["catalog_salesrecord"] == ("tenant_id", "product_id", "date", "channel")
    assert [k for k in keys if "tenant_id" not in k.columns] == []


def test_foreign_keys_between_tenant_models_are_composite_in_the_database():
    """Every foreign key between two tenant-owned models is (tenant_id, x_id) -> (tenant_id, id)
    in the database, or is one of UNCONSTRAINED; a global model may not point at one."""
    found = {
        (fk.table, fk.columns, fk.target, fk.target_columns) for fk in foreign_keys(connection)
    }
    composite, unconstrained = [], []
    for model in _tenant_models():
        for field in model._meta.local_fields:
            if not field.many_to_one and not field.one_to_one:
                continue
            if not issubclass(field.related_model, TenantOwned):
                continue
            expected = (
                model._meta.db_table,
                ("tenant_id", field.column),
                field.related_model._meta.db_table,
                ("tenant_id", "id"),
            )
            if expected in found:
                composite.append(_label(field))
            else:
                unconstrained.append(_label(field))
    assert sorted(unconstrained) == sorted(UNCONSTRAINED)
    assert len(composite) == 20  # the ones that had a single-column constraint before
    for model in apps.get_models(include_auto_created=True):
        if issubclass(model, TenantOwned):
            continue
        pointing = [
            _label(f)
            for f in model._meta.local_fields
            if f.is_relation and f.related_model and issubclass(f.related_model, TenantOwned)
        ]
        assert pointing == [], f"{model._meta.label} refers to tenant rows without a tenant_id"


def test_the_global_tables_are_the_listed_ones():
    owned = tables(connection)
    assert {t for t, tenant in owned.items() if not tenant} == set(GLOBAL_TABLES)
    assert set(LOCAL_TABLES) <= set(GLOBAL_TABLES)
    for model in apps.get_models(include_auto_created=True):
        table = model._meta.db_table
        if issubclass(model, TenantOwned):
            assert owned[table], f"{table} of the tenant-owned {model._meta.label} lacks tenant_id"
        elif not model._meta.proxy and model._meta.managed:
            assert table in GLOBAL_TABLES, f"{table}: tenant-owned or global? say which"


def test_the_distribution_plan_covers_every_table_in_order():
    """`manage.py citus_plan`: the foreign keys between tenant-owned tables dropped, every global
    table but the local ones a reference table after those it refers to, every tenant-owned table
    distributed by tenant_id with the anchor, the foreign keys added again and validated."""
    statements = distribution_statements(connection)
    out = io.StringIO()
    call_command("citus_plan", stdout=out)
    assert [line for line in out.getvalue().splitlines() if not line.startswith("--")] == (
        statements
    )
    owned = tables(connection)
    kinds = [s.split()[0] + s.split()[1].split("(")[0] for s in statements]
    drops = [i for i, s in enumerate(statements) if " DROP CONSTRAINT " in s]
    creates = [i for i, s in enumerate(statements) if s.startswith("SELECT create_")]
    adds = [i for i, s in enumerate(statements) if " ADD CONSTRAINT " in s]
    validations = [i for i, s in enumerate(statements) if " VALIDATE CONSTRAINT " in s]
    assert len(kinds) == len(drops) + len(creates) + len(adds) + len(validations)
    assert max(drops) < min(creates) and max(creates) < min(adds)
    composite = {fk.name for fk in foreign_keys(connection) if owned[fk.table] and owned[fk.target]}
    assert len(composite) == 20
    for found in (drops, adds, validations):
        assert {statements[i].split('"')[3] for i in found} == composite
    assert all(statements[i].endswith(" DEFERRABLE INITIALLY DEFERRED NOT VALID;") for i in adds)

    reference = [s.split("'")[1] for s in statements if "create_reference_table" in s]
    distributed = [s.split("'")[1] for s in statements if "create_distributed_table" in s]
    assert set(reference) == set(GLOBAL_TABLES) - set(LOCAL_TABLES)
    assert set(distributed) == {t for t, tenant in owned.items() if tenant}
    assert statements[creates[len(reference)]] == (
        "SELECT create_distributed_table('tenants_membership', 'tenant_id', "
        "colocate_with => 'none');"
    )
    rest = statements[creates[len(reference)] + 1 : max(creates) + 1]
    assert all(s.endswith("'tenant_id', colocate_with => 'tenants_membership');") for s in rest)
    position = {t: i for i, t in enumerate(reference)}
    for fk in foreign_keys(connection):
        if fk.table in position and fk.target in position and fk.table != fk.target:
            assert position[fk.target] < position[fk.table], fk.name


def test_the_system_check_refuses_a_single_column_key_between_tenant_models(monkeypatch):
    from pricing_saas.pricing.models import Recommendation

    assert tenant_foreign_keys() == []
    monkeypatch.setattr(Recommendation._meta.get_field("job"), "db_constraint", True)
    errors = tenant_foreign_keys()
    assert [(e.id, e.level) for e in errors] == [("tenants.E001", checks.ERROR)]
    assert "pricing.Recommendation.job" in errors[0].msg


def test_the_checker_finds_each_kind_of_table_that_breaks_the_rule():
    """Temporary tables, one mistake each; then the same tables done right."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TEMP TABLE parent (tenant_id bigint NOT NULL, id bigint PRIMARY KEY,
                                      code text UNIQUE, label text);
            CREATE UNIQUE INDEX parent_label ON parent (lower(label)) WHERE label <> '';
            CREATE TEMP TABLE child (tenant_id bigint NOT NULL, id bigint NOT NULL,
                                     parent_id bigint REFERENCES parent (id),
                                     PRIMARY KEY (tenant_id, id));
            CREATE TEMP TABLE crossed (tenant_id bigint NOT NULL, id bigint NOT NULL,
                                       child_id bigint, PRIMARY KEY (tenant_id, id),
                                       FOREIGN KEY (child_id, tenant_id)
                                         REFERENCES child (tenant_id, id) ON DELETE SET NULL);
            CREATE TEMP TABLE keyless (tenant_id bigint NOT NULL);
            CREATE TEMP TABLE global_thing (id bigint PRIMARY KEY, child_tenant bigint,
                                            child_id bigint,
                                            FOREIGN KEY (child_tenant, child_id)
                                              REFERENCES child (tenant_id, id));
            SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema();
            """
        )
        schema = cursor.fetchone()[0]
        problems = key_problems(connection, schema)
        assert len(problems) == 8, problems
        expected = [
            "parent: primary key parent_pkey (id) does not hold tenant_id",
            "parent: unique parent_code_key (code) does not hold tenant_id",
            "parent: unique parent_label ((expression)) does not hold tenant_id",
            "child: foreign key child_parent_id_fkey (parent_id) -> parent (id) does not pair",
            "crossed: foreign key crossed_child_id_tenant_id_fkey (child_id, tenant_id) -> "
            "child (tenant_id, id) does not pair",
            "is ON DELETE SET NULL",
            "keyless has no primary key",
            "global_thing: foreign key global_thing_child_tenant_child_id_fkey (child_tenant, "
            "child_id) -> child (tenant_id, id): a global table refers to a tenant-owned one",
        ]
        for part in expected:
            assert any(part in p for p in problems), (part, problems)
        cursor.execute(
            """
            DROP TABLE global_thing, keyless, crossed, child, parent;
            CREATE TEMP TABLE parent (tenant_id bigint NOT NULL, id bigint NOT NULL,
                                      code text, PRIMARY KEY (tenant_id, id),
                                      UNIQUE (tenant_id, code));
            CREATE TEMP TABLE child (tenant_id bigint NOT NULL, id bigint NOT NULL,
                                     parent_id bigint, PRIMARY KEY (tenant_id, id),
                                     FOREIGN KEY (tenant_id, parent_id)
                                       REFERENCES parent (tenant_id, id));
            """
        )
        assert key_problems(connection, schema) == []
        cursor.execute("DROP TABLE child, parent")
