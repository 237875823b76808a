# Citus-ready keys, step 2 (docs/citus.md): the primary keys become (tenant_id, id) in the
# database (kpi_dailykpi's already holds tenant_id) and the foreign keys between tenant-owned
# tables (tenant_id, x_id) -> (tenant_id, id).

from django.db import migrations

from tenants.keys import tenant_foreign_key, tenant_primary_key


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0004_tenant_keys"),
        ("kpi", "0006_drop_single_column_foreign_keys"),
        ("ml", "0010_tenant_keys"),
    ]

    operations = [
        tenant_primary_key("kpi_alertpolicy"),
        tenant_primary_key("kpi_alertcheckdue"),
        tenant_primary_key("kpi_alert"),
        tenant_primary_key("kpi_undercutalert"),
        tenant_foreign_key("kpi_alert", "retraining_id", "ml_modelversion"),
        tenant_foreign_key("kpi_undercutalert", "product_id", "catalog_product"),
    ]
