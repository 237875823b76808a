# The planner's statistics of the tables an import writes, refreshed by the application role
# right after a large import (pricing_saas.catalog.importer.planner). ANALYZE needs the table's
# owner, which the application role is not (tenants/rls.py): this function runs as its owner
# (SECURITY DEFINER, made by migrate, which runs as the owner) and analyzes only those three
# tables. A lock held by another ANALYZE of the same table is waited for 5 s at most; then it
# returns false (that ANALYZE refreshes the same statistics).

from django.db import migrations

REFRESH = """
CREATE OR REPLACE FUNCTION catalog_refresh_statistics(target text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '5s'
AS $$
BEGIN
    IF target IS NULL OR target NOT IN (
        'catalog_product', 'catalog_salesrecord', 'catalog_competitoroffer'
    ) THEN
        RAISE EXCEPTION 'catalog_refresh_statistics: % is not a table an import writes', target
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('ANALYZE public.%I', target);
    RETURN true;
EXCEPTION WHEN lock_not_available THEN
    RETURN false;
END
$$;
REVOKE ALL ON FUNCTION catalog_refresh_statistics(text) FROM PUBLIC;
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0004_tenant_keys")]

    operations = [
        migrations.RunSQL(REFRESH, "DROP FUNCTION IF EXISTS catalog_refresh_statistics(text)"),
    ]
