# Citus-ready keys (docs/citus.md): a unique key of a tenant-owned table holds tenant_id (an
# API key's prefix and an invitation's lookup id are unique per tenant, with an index of their
# own for the lookups that come before a tenant is known), and the primary keys become
# (tenant_id, id) in the database; Django's state keeps `id` as the primary key.

from django.db import migrations, models

from tenants.keys import tenant_primary_key


class Migration(migrations.Migration):

    dependencies = [
        ("tenants", "0002_auditevent"),
    ]

    operations = [
        migrations.AlterField(
            model_name='apikey',
            name='prefix',
            field=models.CharField(max_length=16),
        ),
        migrations.AlterField(
            model_name='invitation',
            name='lookup_id',
            field=models.CharField(max_length=16),
        ),
        migrations.AlterField(
            model_name='invitation',
            name='token_hash',
            field=models.CharField(max_length=64),
        ),
        migrations.AddIndex(
            model_name='apikey',
            index=models.Index(fields=['prefix'], name='apikey_prefix_idx'),
        ),
        migrations.AddIndex(
            model_name='invitation',
            index=models.Index(fields=['lookup_id'], name='invitation_lookup_idx'),
        ),
        migrations.AddConstraint(
            model_name='apikey',
            constraint=models.UniqueConstraint(fields=('tenant', 'prefix'), name='apikey_unique_prefix'),
        ),
        migrations.AddConstraint(
            model_name='invitation',
            constraint=models.UniqueConstraint(fields=('tenant', 'token_hash'), name='invitation_unique_token'),
        ),
        migrations.AddConstraint(
            model_name='invitation',
            constraint=models.UniqueConstraint(fields=('tenant', 'lookup_id'), name='invitation_unique_lookup'),
        ),
        tenant_primary_key("tenants_membership"),
        tenant_primary_key("tenants_invitation"),
        tenant_primary_key("tenants_apikey"),
        tenant_primary_key("tenants_auditevent"),
    ]
