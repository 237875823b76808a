# Citus-ready keys, step 1 (docs/citus.md): the single-column foreign keys to other tenant-owned
# tables go (the fields say db_constraint=False), so that the tables they point to can take
# (tenant_id, id) as their primary key; experiments.0005 adds the composite ones.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0003_recorded_experiments_not_randomised"),
    ]

    operations = [
        migrations.AlterField(
            model_name='experimentunit',
            name='experiment',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='units', to='experiments.experiment'),
        ),
        migrations.AlterField(
            model_name='experimentunit',
            name='recommendation',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='pricing.recommendation'),
        ),
    ]
