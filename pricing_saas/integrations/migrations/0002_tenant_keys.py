# Citus-ready keys (docs/citus.md): the primary keys become (tenant_id, id) in the database and
# the foreign keys to a connection (tenant_id, connection_id); the fields say db_constraint=False
# (their single-column constraints are dropped first), Django's state keeps `id` as the key.

import django.db.models.deletion
from django.db import migrations, models

from tenants.keys import tenant_foreign_key, tenant_primary_key


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name='shoporderline',
            name='connection',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='integrations.connection'),
        ),
        migrations.AlterField(
            model_name='shopvariant',
            name='connection',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='integrations.connection'),
        ),
        migrations.AlterField(
            model_name='syncrun',
            name='connection',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='runs', to='integrations.connection'),
        ),
        migrations.AlterField(
            model_name='webhookevent',
            name='connection',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='integrations.connection'),
        ),
        tenant_primary_key("integrations_connection"),
        tenant_primary_key("integrations_syncrun"),
        tenant_primary_key("integrations_shopvariant"),
        tenant_primary_key("integrations_shoporderline"),
        tenant_primary_key("integrations_webhookevent"),
        tenant_foreign_key("integrations_syncrun", "connection_id", "integrations_connection"),
        tenant_foreign_key("integrations_shopvariant", "connection_id", "integrations_connection"),
        tenant_foreign_key("integrations_shoporderline", "connection_id", "integrations_connection"),
        tenant_foreign_key("integrations_webhookevent", "connection_id", "integrations_connection"),
    ]
