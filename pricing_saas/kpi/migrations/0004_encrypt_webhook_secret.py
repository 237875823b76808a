# The alert webhook's signing key was stored in plain text: from here on it is a Fernet token
# under FIELD_ENCRYPTION_KEYS, as the shops' credentials are (pricing_saas.integrations.crypto).

from django.db import migrations, models


def _each_tenant(apps, schema_editor):
    """Yield a cursor for each tenant in turn, the tenant set (row-level security hides every
    tenant's rows from a statement that names none; the database backend copies the context
    into each statement)."""
    from tenants.context import tenant_context

    Tenant = apps.get_model("tenants", "Tenant")
    for tenant in Tenant.objects.order_by("pk"):
        with tenant_context(tenant), schema_editor.connection.cursor() as cursor:
            yield cursor


def encrypt_keys(apps, schema_editor):
    from pricing_saas.integrations import crypto

    for cursor in _each_tenant(apps, schema_editor):
        cursor.execute("SELECT id, webhook_secret FROM kpi_alertpolicy WHERE webhook_secret <> ''")
        for pk, key in cursor.fetchall():
            if key.startswith("whsec_"):  # plain text; a token is left as it is
                cursor.execute(
                    "UPDATE kpi_alertpolicy SET webhook_secret = %s WHERE id = %s",
                    [crypto.encrypt({"key": key}), pk],
                )


def decrypt_keys(apps, schema_editor):
    from pricing_saas.integrations import crypto

    for cursor in _each_tenant(apps, schema_editor):
        cursor.execute("SELECT id, webhook_secret FROM kpi_alertpolicy WHERE webhook_secret <> ''")
        for pk, token in cursor.fetchall():
            if not token.startswith("whsec_"):
                key = crypto.decrypt(token).get("key", "")
                cursor.execute(
                    "UPDATE kpi_alertpolicy SET webhook_secret = %s WHERE id = %s", [key, pk]
                )


class Migration(migrations.Migration):

    dependencies = [
        ('kpi', '0003_alert_hysteresis_and_quiet_check'),
    ]

    operations = [
        migrations.AlterField(
            model_name='alertpolicy',
            name='webhook_secret',
            field=models.TextField(blank=True, default='', editable=False),
        ),
        migrations.RunPython(encrypt_keys, decrypt_keys),
    ]
