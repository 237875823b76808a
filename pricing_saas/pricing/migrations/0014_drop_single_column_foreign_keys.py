# Citus-ready keys, step 1 (docs/citus.md): the single-column foreign keys to other tenant-owned
# tables go (the fields say db_constraint=False), so that the tables they point to can take
# (tenant_id, id) as their primary key; pricing.0015 adds the composite ones. A schedule's
# periodic task (a global table) is unique with the tenant, no longer on its own.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("pricing", "0013_publication_retry_of"),
    ]

    operations = [
        migrations.AlterField(
            model_name='pricechange',
            name='forecast_version',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='ml.modelversion'),
        ),
        migrations.AlterField(
            model_name='pricechange',
            name='job',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='pricing.repricejob'),
        ),
        migrations.AlterField(
            model_name='pricechange',
            name='publication',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='pricing.publication'),
        ),
        migrations.AlterField(
            model_name='pricechange',
            name='recommendation',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='pricing.recommendation'),
        ),
        migrations.AlterField(
            model_name='pricechange',
            name='reverts',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='pricing.pricechange'),
        ),
        migrations.AlterField(
            model_name='pricelock',
            name='allow_recommendation',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='pricing.recommendation'),
        ),
        migrations.AlterField(
            model_name='publication',
            name='retry_of',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='retries', to='pricing.publication'),
        ),
        migrations.AlterField(
            model_name='recommendation',
            name='job',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='pricing.repricejob'),
        ),
        migrations.AlterField(
            model_name='repricejob',
            name='demand_version',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='ml.modelversion'),
        ),
        migrations.AlterField(
            model_name='repriceschedule',
            name='periodic_task',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='django_celery_beat.periodictask'),
        ),
        migrations.AlterField(
            model_name='rulesetversion',
            name='rule_set',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='versions', to='pricing.ruleset'),
        ),
        migrations.AddConstraint(
            model_name='repriceschedule',
            constraint=models.UniqueConstraint(fields=('tenant', 'periodic_task'), name='repriceschedule_unique_task'),
        ),
    ]
