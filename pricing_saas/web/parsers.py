"""The API's JSON parser (the default of every view): REST framework's, plus two limits.

- Nesting deeper than MAX_DEPTH is refused before it is parsed. Python's decoder recurses per
  level, so a body of a thousand `[` raised RecursionError: a 500 on every JSON endpoint. The
  depth is counted on the text with strings cut out, which cannot recurse.
- A number too large for a float (`1e400`) stays the text it was, instead of becoming
  Infinity, so the field it is given to refuses it by name ("out of range") rather than a filter
  comparing with Infinity matching every row. NaN and Infinity are not JSON and are refused
  here, as REST framework does.
"""

from __future__ import annotations

import json
import math
import re

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 64

# A JSON string (escapes included); what is left outside strings holds every bracket.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_OPEN = frozenset("[{")


def nesting_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """The deepest nesting of arrays and objects in JSON text, counted up to `limit` + 1 (the
    count stops there). Text that is not JSON gets some count; the parser then refuses it."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRING.sub("", text)):
        if match.group() in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def _number(text: str):
    value = float(text)
    return value if math.isfinite(value) else text


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (send a number or null)")


def loads(text: str):
    """JSON text to Python under the API's rules (see the module); ParseError when refused."""
    if nesting_depth(text) > MAX_DEPTH:
        raise ParseError(
            f"JSON nested deeper than {MAX_DEPTH} levels is not accepted", code="too_deep"
        )
    try:
        return json.loads(text, parse_float=_number, parse_constant=_no_constant)
    except RecursionError:  # not reached below MAX_DEPTH; kept so that it can never be a 500
        raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels", code="too_deep") from None
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - the body is not {encoding}: {exc}") from None
        return loads(text)
