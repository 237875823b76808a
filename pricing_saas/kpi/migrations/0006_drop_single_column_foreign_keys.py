# Citus-ready keys, step 1 (docs/citus.md): the single-column foreign keys to other tenant-owned
# tables go (the fields say db_constraint=False), so that the tables they point to can take
# (tenant_id, id) as their primary key; kpi.0007 adds the composite ones.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("kpi", "0005_merge_undercuts_and_alert_checks"),
    ]

    operations = [
        migrations.AlterField(
            model_name='alert',
            name='retraining',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='ml.modelversion'),
        ),
        migrations.AlterField(
            model_name='undercutalert',
            name='product',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='catalog.product'),
        ),
    ]
