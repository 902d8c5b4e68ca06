"""How request arguments are read: webargs (through flask-smorest), with our rules.

- A query-string key the schema does not know is refused by the schema's own `unknown = RAISE`
  (webargs would silently drop it); invalid input is a 400 (DESIGN §Errors), not webargs' 422.
- A JSON body must hold only what the rest of the app can: no U+0000 (PostgreSQL text and jsonb
  cannot store it), no unpaired UTF-16 surrogate (JSON can spell one, `"\\udc00"`, UTF-8 cannot
  encode it), no integer beyond Python's 4,300 digits, at most MAX_JSON_DEPTH levels of nesting
  (code that walks deeper input runs out of recursion). Each would otherwise surface as a 500
  wherever the value first met the database or a recursive walk; here it is one 400 for the
  request, before any view sees it. The same goes for U+0000 in a query string.
- NaN and Infinity, which Python's decoder accepts, are left to the schemas and services: a
  partner event carrying one is rejected on its own (app.behaviours.ingest), not its whole batch.

The depth is read from the raw bytes (C-speed translate/replace, ~0.6 µs per partner event against
~2 µs for walking the decoded body); only a body whose strings hold a bracket or a backslash falls
back to the walk. The text check walks the decoded body only when a byte scan says it might fail.
"""
from __future__ import annotations

import json
import re
from typing import Any

from flask import Request
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from app.errors import validation_error

MAX_JSON_DEPTH = 32

# A NUL or a surrogate can only enter decoded JSON through a \u escape: raw control characters are
# invalid JSON and raw surrogates invalid UTF-8. Escaped backslashes make this a superset, which is
# fine: a match only means the exact (slower) check runs.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_CONTAINERS = (dict, list)
# The depth scan keeps only brackets, quotes and backslashes (UTF-8: these bytes occur in nothing else).
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"\\')
_OPEN_CLOSE = bytes.maketrans(b"[]{}", b"()()")
_LONG_NUMBER = "Numbers may have at most 4,300 digits."


class ApiParser(FlaskParser):
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return core.missing
        raw = req.get_data(cache=True)
        try:
            data = core.parse_json(raw)
        except json.JSONDecodeError:
            raise  # webargs: an empty body is "missing", anything else (bad UTF-8 too) "Invalid JSON body."
        except RecursionError:
            raise _refused(f"JSON may nest at most {MAX_JSON_DEPTH} levels.") from None
        except ValueError:  # an integer beyond Python's 4,300 digits
            raise _refused(_LONG_NUMBER) from None
        check_decoded_json(data, raw)
        return data

    def load_querystring(self, req: Request, schema: Schema) -> Any:
        for key, value in req.args.items(multi=True):
            if "\x00" in key or "\x00" in value:
                raise validation_error({"query": ["The query string may not contain U+0000."]})
        return super().load_querystring(req, schema)


def check_decoded_json(data: Any, raw: bytes) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or holding text PostgreSQL cannot store."""
    if len(raw) > 2 * MAX_JSON_DEPTH:  # shorter cannot hold MAX_JSON_DEPTH + 1 pairs of brackets
        too_deep = _too_deep_raw(raw)
        if too_deep is None:
            too_deep = _too_deep(data)
        if too_deep:
            raise _refused(f"JSON may nest at most {MAX_JSON_DEPTH} levels.")
    may_have_bad_text = _SUSPECT_ESCAPE.search(raw) is not None
    if may_have_bad_text and not _storable(data):
        raise _refused("Text may not contain U+0000 or an unpaired UTF-16 surrogate (\\ud800-\\udfff).")


def _too_deep_raw(raw: bytes) -> bool | None:
    """Nesting deeper than MAX_JSON_DEPTH, read from the bytes of a valid UTF-8 JSON body.

    Keep brackets, quotes and backslashes, then drop each string's quote pair: a string holding
    none of them leaves exactly '""'. If any quote or backslash is left, some string holds a
    bracket or an escape, and the bytes alone cannot tell structure from text: None (walk the
    decoded body instead). Otherwise what is left is the bracket structure, and each pass that
    removes every innermost pair "()" lowers its depth by exactly one.
    """
    structure = raw.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in structure or b"\\" in structure:
        return None
    structure = structure.translate(_OPEN_CLOSE)
    for _ in range(MAX_JSON_DEPTH):
        if not structure:
            return False
        structure = structure.replace(b"()", b"")
    return bool(structure)


def _too_deep(data: Any) -> bool:
    """Breadth-first, one list of containers per level: no recursion, however deep the input."""
    level = [data] if type(data) in _CONTAINERS else []
    for _ in range(MAX_JSON_DEPTH):
        if not level:
            return False
        level = [child for value in level for child in (value.values() if type(value) is dict else value)
                 if type(child) in _CONTAINERS]
    return bool(level)


def _storable(value: Any) -> bool:
    """True when every string (keys included) is valid UTF-8 without U+0000. Depth is already bounded."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(key) and _storable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return True


def _refused(reason: str) -> Exception:
    return validation_error({"json": [reason]})
