"""Cursor pagination, the one way lists are paged (`?cursor=&limit=`, limit capped at 100).

A cursor is an opaque base64url JSON list of the sort-key values of the last item returned.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from app.errors import AppError

MAX_LIMIT = 100
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class CursorArgs(Schema):
    class Meta:
        unknown = RAISE

    cursor = fields.String(load_default=None, validate=validate.Length(max=512))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_LIMIT))


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, length: int) -> list[Any] | None:
    """Decode a cursor made by encode_cursor with `length` values; a bad cursor is a 400, never a 500."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != length or not all(map(_plain_value, values)):
        raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
    return values


def _plain_value(value: Any) -> bool:
    """What encode_cursor writes: sort keys that are BIGINT-sized ints or text PostgreSQL can store.
    A forged cursor with anything else is refused here rather than failing in SQL."""
    if type(value) is int:
        return _INT64_MIN <= value <= _INT64_MAX
    return isinstance(value, str) and len(value) <= 64 and value.isprintable()


def page(items: list[Any], limit: int, key: Any) -> dict[str, Any]:
    """Build a page from up to limit+1 fetched items; `key(item)` gives the cursor values."""
    has_more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(key(items[-1])) if has_more and items else None}
