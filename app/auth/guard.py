"""Role checks: every endpoint names the role it needs; the token says who the caller is."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request

from app.auth.tokens import AccessClaims, invalid_token, verify_access_token
from app.errors import AppError

BEARER_SECURITY = [{"bearerAuth": []}]


def bearer_claims() -> AccessClaims:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AppError("unauthorized", "Sign in first.", "请先登录。", 401)
    return verify_access_token(token.strip())


def citizen_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Sets g.citizen_id (and the rate-limit and idempotency scope) for a signed-in citizen."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        claims = bearer_claims()
        citizen_id = claims.citizen_id
        if claims.role != "citizen" or citizen_id is None:
            raise AppError("forbidden", "This is for citizens only.", "仅限市民用户使用。", 403)
        from app.accounts.service import active_citizen

        active_citizen(citizen_id) or _raise_closed()
        g.citizen_id = citizen_id
        g.rate_limit_subject = claims.subject
        g.idempotency_scope = claims.subject
        return view(*args, **kwargs)

    return wrapper


def _raise_closed() -> None:
    raise invalid_token("This account is closed.")
