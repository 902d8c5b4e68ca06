"""Role checks: every endpoint names the role it needs; the token says who the caller is."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
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


# Staff and merchant roles. A token's subject is "<kind>:<id>"; the kind's own service says whether
# that subject may still act (a suspended operator or a removed merchant staff member is refused at
# once, not when the token expires), and only with the role the account has now (the token's role is
# passed: a demoted admin's older token is refused). Each kind names "module:function(id, role) -> bool".
SUBJECT_CHECKS: dict[str, str] = {
    "staff": "app.staff.service:staff_may_act",
    "merchant_staff": "rewards.merchants.service:merchant_staff_may_act",
}

# Roles an administrator also holds (an admin can do what an operator or reviewer can).
ADMIN_ROLE = "admin"
STAFF_ROLES = ("operator", "reviewer", "admin")


@dataclass(frozen=True)
class Actor:
    """Who is calling a staff or merchant endpoint: g.actor."""

    kind: str  # "staff" | "merchant_staff"
    id: int
    role: str

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.id}"


def role_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let through a token whose role is one of `roles` (an admin passes any staff role)."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            claims = bearer_claims()
            allowed = claims.role in roles or (claims.role == ADMIN_ROLE and any(r in STAFF_ROLES for r in roles))
            if not allowed:
                raise AppError("forbidden", "Your role does not allow this.", "您的角色无权执行此操作。", 403)
            kind, _, ident = claims.subject.partition(":")
            if kind not in SUBJECT_CHECKS or not ident.isdigit() or not _subject_may_act(kind, int(ident), claims.role):
                raise invalid_token("This account may no longer act.")
            g.actor = Actor(kind=kind, id=int(ident), role=claims.role)
            g.rate_limit_subject = claims.subject
            g.idempotency_scope = claims.subject
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _subject_may_act(kind: str, ident: int, role: str) -> bool:
    module_name, _, function_name = SUBJECT_CHECKS[kind].partition(":")
    check: Callable[[int, str], bool] = getattr(importlib.import_module(module_name), function_name)
    return bool(check(ident, role))
