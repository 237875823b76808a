# Citus-ready keys (docs/citus.md): the primary keys become (tenant_id, id) in the database;
# Django's state keeps `id` as the key. After kpi.0006, which drops the one single-column foreign
# key to catalog_product (the others never had a constraint: bulk speed, catalog/models.py).

from django.db import migrations

from tenants.keys import tenant_primary_key


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0003_import_uploads_under_the_tenant"),
        ("kpi", "0006_drop_single_column_foreign_keys"),
    ]

    operations = [
        tenant_primary_key("catalog_product"),
        tenant_primary_key("catalog_competitoroffer"),
        tenant_primary_key("catalog_importjob"),
    ]
