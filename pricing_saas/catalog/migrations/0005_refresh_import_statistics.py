# The planner's statistics of the tables an import writes, refreshed by the application role
# right after a large import (pricing_saas.catalog.importer.planner). ANALYZE needs the table's
# owner, which the application role is not (tenants/rls.py): this function runs as its owner
# (SECURITY DEFINER, made by migrate, which runs as the owner) and analyzes only those three
# tables. It does nothing where an ANALYZE (autovacuum's too) ended after `since` (the import's
# commit: it already saw the import's rows; NULL: analyze anyway), and never waits for a lock
# (SKIP_LOCKED: a VACUUM or ANALYZE at work on the table is left alone, never cancelled). It
# returns whether it analyzed. The application role is granted EXECUTE after each migrate
# (tenants.grants.APP_FUNCTIONS).

from django.db import migrations

REFRESH = """
DROP FUNCTION IF EXISTS public.catalog_refresh_statistics(text);
DROP FUNCTION IF EXISTS public.catalog_refresh_statistics(text, interval);
CREATE OR REPLACE FUNCTION public.catalog_refresh_statistics(target text, since timestamptz)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    manual timestamptz;
    auto timestamptz;
    after timestamptz;
BEGIN
    IF target IS NULL OR target NOT IN (
        'catalog_product', 'catalog_salesrecord', 'catalog_competitoroffer'
    ) THEN
        RAISE EXCEPTION 'catalog_refresh_statistics: % is not a table an import writes', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pg_stat_clear_snapshot();
    SELECT last_analyze, last_autoanalyze INTO manual, auto
    FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = target;
    IF since IS NOT NULL AND greatest(manual, auto) >= since THEN
        RETURN false;
    END IF;
    EXECUTE format('ANALYZE (SKIP_LOCKED) public.%I', target);
    PERFORM pg_stat_clear_snapshot();
    SELECT last_analyze INTO after
    FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = target;
    RETURN after IS DISTINCT FROM manual;
END
$$;
REVOKE ALL ON FUNCTION public.catalog_refresh_statistics(text, timestamptz) FROM PUBLIC;
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0004_tenant_keys")]

    operations = [
        migrations.RunSQL(
            REFRESH, "DROP FUNCTION IF EXISTS public.catalog_refresh_statistics(text, timestamptz)"
        ),
    ]
