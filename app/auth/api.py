"""HTTP routes for sign-in, tokens and linked identities: parse, call the service, dump.

Sign-in and refresh are rate limited per client address (RATELIMIT_AUTH, stored in Redis).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g
from flask_smorest import Blueprint

from app.auth import service
from app.auth.guard import BEARER_SECURITY, citizen_required
from app.auth.schemas import (
    AuthAuthorizeUrlQuerySchema,
    AuthAuthorizeUrlSchema,
    AuthLinkedIdentityListSchema,
    AuthLinkedIdentitySchema,
    AuthLoginCodeSchema,
    AuthRefreshTokenSchema,
    AuthTokensSchema,
)
from app.errors import AppError
from app.extensions import limiter

blp = Blueprint("auth", __name__, description="Sign-in (WeChat, Alipay, Suishenban 随申办), tokens, linked sign-ins")

T = TypeVar("T")
PUBLIC: list[dict[str, list[str]]] = []


def _auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


def _keeping_security_records(action: Callable[[], T]) -> T:
    """Run `action`; if it refuses, the request boundary still commits what it recorded (the
    failed-login audit row, a revoked token family) instead of rolling the error back."""
    try:
        return action()
    except AppError as error:
        error.keep_changes = True
        raise


def _sign_in(provider: str, code: str) -> service.SignedIn:
    return _keeping_security_records(lambda: service.sign_in(provider, code))


@blp.post("/auth/wechat")
@blp.doc(security=PUBLIC)
@limiter.limit(_auth_limit)
@blp.arguments(AuthLoginCodeSchema)
@blp.response(200, AuthTokensSchema)
def sign_in_wechat(body: dict[str, Any]) -> service.SignedIn:
    """Sign in with a WeChat mini-program login code (wx.login → code2Session)."""
    return _sign_in("wechat", body["code"])


@blp.post("/auth/alipay")
@blp.doc(security=PUBLIC)
@limiter.limit(_auth_limit)
@blp.arguments(AuthLoginCodeSchema)
@blp.response(200, AuthTokensSchema)
def sign_in_alipay(body: dict[str, Any]) -> service.SignedIn:
    """Sign in with an Alipay mini-program auth code (my.getAuthCode → alipay.system.oauth.token)."""
    return _sign_in("alipay", body["code"])


@blp.post("/auth/suishenban")
@blp.doc(security=PUBLIC)
@limiter.limit(_auth_limit)
@blp.arguments(AuthLoginCodeSchema)
@blp.response(200, AuthTokensSchema)
def sign_in_suishenban(body: dict[str, Any]) -> service.SignedIn:
    """Sign in with the code Suishenban 随申办 returned to the H5 page (OAuth2 authorization code)."""
    return _sign_in("suishenban", body["code"])


@blp.get("/auth/suishenban/authorize-url")
@blp.doc(security=PUBLIC)
@blp.arguments(AuthAuthorizeUrlQuerySchema, location="query")
@blp.response(200, AuthAuthorizeUrlSchema)
def suishenban_authorize_url(query: dict[str, Any]) -> dict[str, str]:
    """Where the H5 page sends the citizen to sign in with Suishenban; it comes back with ?code=&state=."""
    return {"url": service.suishenban_authorize_url(query["state"])}


@blp.post("/auth/refresh")
@blp.doc(security=PUBLIC)
@limiter.limit(_auth_limit)
@blp.arguments(AuthRefreshTokenSchema)
@blp.response(200, AuthTokensSchema)
def refresh(body: dict[str, Any]) -> service.SignedIn:
    """Trade a refresh token for new tokens. Each refresh token works once; reusing one signs out its family."""
    return _keeping_security_records(lambda: service.refresh(body["refresh_token"]))


@blp.post("/auth/logout")
@blp.doc(security=PUBLIC)
@blp.arguments(AuthRefreshTokenSchema)
@blp.response(204)
def logout(body: dict[str, Any]) -> None:
    """Sign this device out: its refresh token and every token rotated from it stop working."""
    service.logout(body["refresh_token"])


@blp.get("/me/identities")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, AuthLinkedIdentityListSchema)
@citizen_required
def list_identities() -> dict[str, Any]:
    """The sign-in providers linked to my account."""
    return {"items": service.list_identities(g.citizen_id)}


@blp.post("/me/identities/<string:provider>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, AuthLinkedIdentitySchema)
@citizen_required
@blp.arguments(AuthLoginCodeSchema)
def link_identity(body: dict[str, Any], provider: str) -> Any:
    """Link another provider (wechat, alipay, suishenban) with a fresh login code from it."""
    return service.link_identity(g.citizen_id, provider, body["code"])


@blp.delete("/me/identities/<string:provider>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(204)
@citizen_required
def unlink_identity(provider: str) -> None:
    """Unlink a provider; the last one cannot be unlinked."""
    service.unlink_identity(g.citizen_id, provider)
