# The planner's statistics of the tables an import writes, refreshed by the application role
# right after a large import (pricing_saas.catalog.importer.planner). ANALYZE needs the table's
# owner, which the application role is not (tenants/rls.py): this function runs as its owner
# (SECURITY DEFINER, made by migrate, which runs as the owner) and analyzes only those three
# tables. It never waits for a lock (SKIP_LOCKED: a VACUUM, autovacuum's included, or another
# ANALYZE at work on the table is left alone, never cancelled) and does nothing when the table
# was analyzed within `quiet` (a burst of imports costs one ANALYZE). The application role
# is granted EXECUTE after each migrate (tenants.grants.APP_FUNCTIONS).

from django.db import migrations

REFRESH = """
CREATE OR REPLACE FUNCTION public.catalog_refresh_statistics(target text, quiet interval)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    latest timestamptz;
BEGIN
    IF target IS NULL OR target NOT IN (
        'catalog_product', 'catalog_salesrecord', 'catalog_competitoroffer'
    ) THEN
        RAISE EXCEPTION 'catalog_refresh_statistics: % is not a table an import writes', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT greatest(last_analyze, last_autoanalyze) INTO latest
    FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = target;
    IF latest IS NOT NULL AND latest > clock_timestamp() - greatest(quiet, interval '0') THEN
        RETURN false;
    END IF;
    EXECUTE format('ANALYZE (SKIP_LOCKED) public.%I', target);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION public.catalog_refresh_statistics(text, interval) FROM PUBLIC;
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0004_tenant_keys")]

    operations = [
        migrations.RunSQL(
            REFRESH, "DROP FUNCTION IF EXISTS public.catalog_refresh_statistics(text, interval)"
        ),
    ]
