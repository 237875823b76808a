"""SQL that parses a text cell into its column's type, and the checks that make a cell invalid.

Every function returns SQL text over a raw cell `r` (text, as the file had it) and its parsed
value `v`; the importer runs it once over the whole staging table (`rows.build_clean`).
"""

from __future__ import annotations

from ..formats import Column

# An exponent as COPY reads it on the fast path, so both paths agree ("1e3" is 1000); at most
# three digits, so the cast can never overflow (a larger one is reported, not a 500).
_NUM = r"^\s*-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]{1,3})?\s*$"
_NUM_DC = r"^\s*-?[0-9]+(,[0-9]+)?\s*$"
_INT = r"^\s*-?[0-9]{1,9}(\.0+)?\s*$"
_DATE = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*$"
_TS = (
    r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?"
    r"\s*(Z|[+-](0[0-9]|1[0-5])(:?[0-5][0-9])?)?\s*$"
)  # an offset beyond ±15:59 Postgres refuses (a 500 when it reached the cast)
_TRUE = "('true','t','1','yes','y')"
_FALSE = "('false','f','0','no','n')"

# Fast path: columns that Postgres can type while copying. A file whose every cell fits (most
# files) is parsed by COPY itself; any cell that does not ("$1,299", "three", an impossible date)
# makes the fast path fail, and the file is read again through the text path that reports it.
TYPED = {"money": "numeric", "int": "integer", "bool": "boolean"}

NOT_A_NUMBER = "not a number (e.g. 1299.00, $1,299.00 or ₹32,999)"
# `1_000`: Python's float() and Postgres 16 read it as 1000; a merchant's file never means it.
DIGIT_SEPARATOR = "a number with digit separators (write 1000, not 1_000)"
_SEPARATED = r"^\s*[+-]?[0-9.]*[0-9]_[0-9][0-9_.eE+-]*\s*$"


def q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def empty(r: str) -> str:
    return f"({r} IS NULL OR btrim({r}) = '')"


def _valid_date(s: str) -> str:
    """SQL: `s` (text 'YYYY-MM-DD...') names a real calendar day. Evaluated only after a regex."""
    y, m, d = f"substr({s},1,4)::int", f"substr({s},6,2)::int", f"substr({s},9,2)::int"
    last = f"extract(day from make_date({y}, {m}, 1) + interval '1 month' - interval '1 day')"
    return (
        f"CASE WHEN {y} >= 1 AND {m} BETWEEN 1 AND 12 THEN {d} BETWEEN 1 AND {last} ELSE false END"
    )


NAME_SPACE = r"[\s\u00a0]+"  # (a Postgres regular expression: white space, no-break spaces)


def name_sql(r: str) -> str:
    """SQL: the name in text `r` as a name column reads it (runs of white space, tabs and
    no-break spaces too, as one space; trimmed; NULL where nothing is left)."""
    return f"NULLIF(btrim(regexp_replace({r}, {q(NAME_SPACE)}, ' ', 'g')), '')"


def parse_sql(col: Column, r: str, *, decimal_comma: bool, tz: str) -> str:
    """A SQL expression turning raw text `r` into the column's type; NaN/NULL when invalid."""
    if col.type in ("text", "url"):
        return f"NULLIF(btrim({r}), '')"
    if col.type == "name":
        return name_sql(r)
    if col.type == "currency":
        return f"NULLIF(upper(btrim({r})), '')"
    if col.type == "money":
        fast = _NUM_DC if decimal_comma else _NUM
        cast = (
            f"replace(btrim({r}), ',', '.')::numeric" if decimal_comma else f"btrim({r})::numeric"
        )
        return (
            f"CASE WHEN {empty(r)} THEN NULL WHEN {r} ~ {q(fast)} THEN {cast} "
            f"ELSE catalog_parse_money({r}, {'true' if decimal_comma else 'false'}) END"
        )
    if col.type == "int":
        return f"CASE WHEN {r} ~ {q(_INT)} THEN btrim({r})::numeric::int END"
    if col.type == "bool":
        return (
            f"CASE WHEN lower(btrim({r})) IN {_TRUE} THEN true "
            f"WHEN lower(btrim({r})) IN {_FALSE} THEN false END"
        )
    if col.type == "date":
        s = f"btrim({r})"
        return f"CASE WHEN {r} ~ {q(_DATE)} THEN CASE WHEN {_valid_date(s)} THEN {s}::date END END"
    if col.type == "timestamp":
        s = f"btrim({r})"
        seconds = f"substr({s},18,2)"
        clock = (
            f"(length({s}) < 16 OR (substr({s},12,2)::int < 24 AND substr({s},15,2)::int < 60"
            f" AND ({seconds} !~ '^[0-9]{{2}}$' OR {seconds}::int < 60)))"
        )
        with_zone = f"{s} ~ '(Z|[+-][0-9]{{2}}(:?[0-9]{{2}})?)$'"
        return (
            f"CASE WHEN {r} ~ {q(_TS)} THEN CASE WHEN {_valid_date(s)} AND {clock} THEN "
            f"CASE WHEN {with_zone} THEN {s}::timestamptz "
            f"ELSE ({s}::timestamp AT TIME ZONE {q(tz)}) END END END"
        )
    raise ValueError(col.type)


def fast_date(r: str) -> str:
    """A date cell of the typed path: ISO-shaped text cast directly, no regex."""
    s = f"btrim({r})"
    # An ISO-shaped cell with letters, or an impossible day, raises, which sends the whole file
    # to the text path (where it is reported).
    return (
        f"CASE WHEN length({s}) = 10 AND substr({s},5,1) = '-' AND substr({s},8,1) = '-' "
        f"THEN {s}::date END"
    )


def checks_for(col: Column, r: str, v: str, *, native: bool = False) -> list[tuple[str, str]]:
    """(SQL condition that is true when the cell is invalid, reason) for one column.

    `native`: the staging column already has the column's type (the fast path), so the only
    possible problems are emptiness and the value's range.
    """
    out: list[tuple[str, str]] = []
    if native:
        if col.required:
            out.append((f"{r} IS NULL", "is required"))
        if col.type == "money":
            out.append((f"{v} = 'NaN'", NOT_A_NUMBER))
            out.append((f"{v} <> 'NaN' AND abs({v}) >= 1e10", "is too large"))
        if col.minimum:
            guard = f"{v} <> 'NaN' AND " if col.type == "money" else ""
            out.append((f"{guard}NOT ({col.minimum.replace('v', v)})", col.minimum_reason))
        return out
    if col.required:  # (a name of white space alone is none)
        out.append((f"({empty(r)} OR {v} IS NULL)" if col.type == "name" else empty(r),
                    "is required"))  # fmt: skip
    separated = f"{r} ~ {q(_SEPARATED)}"
    if col.type in ("money", "int"):
        out.append((separated, DIGIT_SEPARATOR))
    if col.type == "money":
        out.append((f"{v} = 'NaN' AND NOT {separated}", NOT_A_NUMBER))
        out.append((f"{v} <> 'NaN' AND abs({v}) >= 1e10", "is too large"))
    elif col.type == "int":
        out.append((f"NOT {empty(r)} AND {v} IS NULL AND NOT {separated}", "not a whole number"))
    elif col.type == "date":
        out.append((f"NOT {empty(r)} AND {v} IS NULL", "not a valid date (use YYYY-MM-DD)"))
    elif col.type == "timestamp":
        out.append(
            (
                f"NOT {empty(r)} AND {v} IS NULL",
                "not a valid date-time (use ISO 8601, e.g. 2024-05-01T10:00:00Z)",
            )
        )
    elif col.type == "bool":
        out.append((f"NOT {empty(r)} AND {v} IS NULL", "not true/false (also yes/no, 1/0)"))
    elif col.type == "currency":
        out.append((f"{v} !~ '^[A-Z]{{3}}$'", "not an ISO 4217 currency code such as EUR"))
    elif col.type == "url":
        out.append((f"{v} !~* '^https?://'", "not an http(s) URL"))
    if col.max_length:
        out.append((f"length({v}) > {col.max_length}", f"longer than {col.max_length} characters"))
    if col.minimum:
        cond = col.minimum.replace("v", v)
        guard = f"{v} <> 'NaN' AND " if col.type == "money" else ""
        out.append((f"{guard}NOT ({cond})", col.minimum_reason))
    return out
