# Citus-ready keys (docs/citus.md): the primary keys become (tenant_id, id) in the database and
# the foreign keys to a model version (tenant_id, model_version_id); the fields say
# db_constraint=False, Django's state keeps `id` as the key. After kpi.0006 and pricing.0014,
# which drop the single-column foreign keys of those apps to ml_modelversion.

import django.db.models.deletion
from django.db import migrations, models

from tenants.keys import tenant_foreign_key, tenant_primary_key


class Migration(migrations.Migration):

    dependencies = [
        ("kpi", "0006_drop_single_column_foreign_keys"),
        ("ml", "0009_elasticity_curvature_se"),
        ("pricing", "0014_drop_single_column_foreign_keys"),
    ]

    operations = [
        migrations.AlterField(
            model_name='elasticity',
            name='model_version',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='ml.modelversion'),
        ),
        migrations.AlterField(
            model_name='referenceprice',
            name='model_version',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='ml.modelversion'),
        ),
        tenant_primary_key("ml_modelversion"),
        tenant_primary_key("ml_elasticity"),
        tenant_primary_key("ml_referenceprice"),
        tenant_primary_key("ml_textmodelconfig"),
        tenant_foreign_key("ml_elasticity", "model_version_id", "ml_modelversion"),
        tenant_foreign_key("ml_referenceprice", "model_version_id", "ml_modelversion"),
    ]
