"""`migrate` as the role that owns the tables (settings.DATABASE_OWNER), which then grants the
application role what it needs on every table: the application itself never owns a table, so it
can never switch row-level security off. Without an owner configured it is Django's migrate."""

from django.core.management.commands.migrate import Command as DjangoMigrate

from tenants.rls import as_owner


class Command(DjangoMigrate):
    def handle(self, *args, **options):
        with as_owner(options["database"]):
            return super().handle(*args, **options)
