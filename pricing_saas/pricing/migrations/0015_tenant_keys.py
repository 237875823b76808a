# Citus-ready keys, step 2 (docs/citus.md): the primary keys become (tenant_id, id) in the
# database and the foreign keys between tenant-owned tables (tenant_id, x_id) -> (tenant_id, id).
# After experiments.0004, which drops the single-column foreign key to pricing_recommendation,
# and ml.0010, whose model versions these refer to.

from django.db import migrations

from tenants.keys import tenant_foreign_key, tenant_primary_key


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0004_drop_single_column_foreign_keys"),
        ("ml", "0010_tenant_keys"),
        ("pricing", "0014_drop_single_column_foreign_keys"),
    ]

    operations = [
        tenant_primary_key("pricing_repricejob"),
        tenant_primary_key("pricing_recommendation"),
        tenant_primary_key("pricing_ruleset"),
        tenant_primary_key("pricing_rulesetversion"),
        tenant_primary_key("pricing_pricingpolicy"),
        tenant_primary_key("pricing_repriceschedule"),
        tenant_primary_key("pricing_publication"),
        tenant_primary_key("pricing_pricechange"),
        tenant_primary_key("pricing_pricelock"),
        tenant_foreign_key("pricing_repricejob", "demand_version_id", "ml_modelversion"),
        tenant_foreign_key("pricing_recommendation", "job_id", "pricing_repricejob"),
        tenant_foreign_key("pricing_rulesetversion", "rule_set_id", "pricing_ruleset"),
        tenant_foreign_key("pricing_publication", "retry_of_id", "pricing_publication"),
        tenant_foreign_key("pricing_pricechange", "recommendation_id", "pricing_recommendation"),
        tenant_foreign_key("pricing_pricechange", "job_id", "pricing_repricejob"),
        tenant_foreign_key("pricing_pricechange", "publication_id", "pricing_publication"),
        tenant_foreign_key("pricing_pricechange", "reverts_id", "pricing_pricechange"),
        tenant_foreign_key("pricing_pricechange", "forecast_version_id", "ml_modelversion"),
        tenant_foreign_key("pricing_pricelock", "allow_recommendation_id", "pricing_recommendation"),
    ]
