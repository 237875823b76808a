# Experiments recorded before `randomised` existed may have taken the merchant's own arms, and
# nothing stored says which: they are labelled "not randomised", the claim that can be wrong
# only in the careful direction (a platform-randomised recorded test loses the label it earned).

from django.db import migrations


def label_recorded(apps, schema_editor):
    from tenants.context import tenant_context

    Tenant = apps.get_model("tenants", "Tenant")
    for tenant in Tenant.objects.order_by("pk"):  # row-level security: one tenant at a time
        with tenant_context(tenant), schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "UPDATE experiments_experiment SET randomised = false WHERE recorded AND randomised"
            )


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0002_experiment_randomised"),
        ("tenants", "0001_initial"),
    ]

    operations = [migrations.RunPython(label_recorded, migrations.RunPython.noop)]
