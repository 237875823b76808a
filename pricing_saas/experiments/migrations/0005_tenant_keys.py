# Citus-ready keys, step 2 (docs/citus.md): the primary keys become (tenant_id, id) in the
# database and the foreign keys between tenant-owned tables (tenant_id, x_id) -> (tenant_id, id).

from django.db import migrations

from tenants.keys import tenant_foreign_key, tenant_primary_key


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0004_drop_single_column_foreign_keys"),
        ("pricing", "0015_tenant_keys"),
    ]

    operations = [
        tenant_primary_key("experiments_experiment"),
        tenant_primary_key("experiments_experimentunit"),
        tenant_foreign_key("experiments_experimentunit", "experiment_id", "experiments_experiment"),
        tenant_foreign_key("experiments_experimentunit", "recommendation_id", "pricing_recommendation"),
    ]
