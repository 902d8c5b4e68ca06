"""`@idempotent`: a replay returns the first answer; the same key with another body is refused (422).

The record is inserted in the request's own transaction, before the work: a concurrent request
with the same key waits on the unique index until the first commits, then replays its answer.
If the first request fails (4xx/5xx) the transaction rolls back, record included, so the
client may retry with the same key.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, g, make_response, request
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.errors import AppError
from app.extensions import db
from app.idempotency.models import IdempotencyRecord

HEADER = "Idempotency-Key"
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,200}$")

# For `@blp.doc(parameters=[IDEMPOTENCY_KEY_PARAMETER])` on every route wrapped in @idempotent.
IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": "Retry safely: a request repeated with the same key gets the first answer again; "
                   "the same key with another body is a 422.",
    "schema": {"type": "string", "pattern": _KEY_PATTERN.pattern, "minLength": 1, "maxLength": 200},
}


def request_fingerprint() -> bytes:
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b"\n" + request.path.encode() + b"\n")
    digest.update(request.get_data(cache=True))
    return digest.digest()


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a view (under the route decorator, above arguments/response) to honour Idempotency-Key.

    The caller's scope comes from `g.idempotency_scope`, set by the authentication decorator,
    which must therefore run first (put `@idempotent` below the auth decorator).
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return make_response(view(*args, **kwargs))
        if not _KEY_PATTERN.match(key):
            raise AppError(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-200 characters of letters, digits, '.', '_', ':' or '-'.",
                "Idempotency-Key 须为 1-200 位字母、数字或 . _ : - 字符。",
                400,
            )
        scope = g.get("idempotency_scope") or "anonymous"
        fingerprint = request_fingerprint()
        inserted = db.session.execute(
            insert(IdempotencyRecord)
            .values(scope=scope, key=key, request_hash=fingerprint)
            .on_conflict_do_nothing()
            .returning(IdempotencyRecord.key)
        ).first()
        if inserted is None:
            return _replay(scope, key, fingerprint)
        response = make_response(view(*args, **kwargs))
        if response.status_code < 400 and response.is_json:
            db.session.execute(
                IdempotencyRecord.__table__.update()
                .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
                .values(status_code=response.status_code, response_body=response.get_json())
            )
        return response

    return wrapper


def _replay(scope: str, key: str, fingerprint: bytes) -> Response:
    record = db.session.scalars(
        select(IdempotencyRecord).where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
    ).one()
    if record.request_hash != fingerprint:
        raise AppError(
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request.",
            "该幂等键已用于另一个不同的请求。",
            422,
        )
    if record.status_code is None:
        raise AppError(
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still being processed.",
            "使用该幂等键的请求仍在处理中。",
            409,
        )
    response = make_response(record.response_body, record.status_code)
    response.headers["Idempotent-Replayed"] = "true"
    return response
