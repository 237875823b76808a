from django.db import migrations

# Parses money the way merchants write it: "₹32,999", "$1,299.00", "USD 12.50", "-$5",
# and with decimal_comma "1.299,00 €". Returns NaN for anything else (the importer reports it).
# Only the slow path: plain numbers are cast inline by the importer.
PARSE_MONEY = r"""
CREATE OR REPLACE FUNCTION catalog_parse_money(raw text, decimal_comma boolean)
RETURNS numeric LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m text[];
    digits text;
BEGIN
    IF raw IS NULL OR btrim(raw) = '' THEN
        RETURN NULL;
    END IF;
    m := regexp_match(raw,
        '^\s*(?:[A-Z]{3}|Rs\.?|kr|[^\w\s.,''-]{1,3})?\s*(-?)\s*(?:[A-Z]{3}|Rs\.?|[^\w\s.,''-]{1,3})?\s*'
        '([0-9](?:[0-9.,'' \u00a0]*[0-9])?)\s*(?:[A-Z]{3}|kr|[^\w\s.,''-]{1,3})?\s*$');
    IF m IS NULL THEN
        RETURN 'NaN';
    END IF;
    -- Thousands separators must group digits (3s, or 2s as in Indian lakhs: 1,29,999) and
    -- come before the decimal mark: "1.299,00" is refused unless decimal_comma is set.
    digits := regexp_replace(m[2], '[ \u00a0'']', '', 'g');
    IF decimal_comma THEN
        IF digits !~ '^[0-9]+(,[0-9]+)?$' AND digits !~ '^[0-9]{1,3}(\.[0-9]{2,3})*(,[0-9]+)?$' THEN
            RETURN 'NaN';
        END IF;
        digits := replace(replace(digits, '.', ''), ',', '.');
    ELSE
        IF digits !~ '^[0-9]+(\.[0-9]+)?$' AND digits !~ '^[0-9]{1,3}(,[0-9]{2,3})*(\.[0-9]+)?$' THEN
            RETURN 'NaN';
        END IF;
        digits := replace(digits, ',', '');
    END IF;
    IF digits !~ '^[0-9]+(\.[0-9]+)?$' THEN
        RETURN 'NaN';
    END IF;
    RETURN (m[1] || digits)::numeric;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [
        migrations.RunSQL(PARSE_MONEY, "DROP FUNCTION IF EXISTS catalog_parse_money(text, boolean)"),
    ]
