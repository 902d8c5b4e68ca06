"""A loopback double of Suishenban (随申办)'s OAuth2 authorization server.

- `GET /oauth2/authorize?response_type=code&client_id&redirect_uri&state` shows a
  small sign-in page for a demo user; with `login_hint=<user>` it approves at once
  (302 to `redirect_uri?code=&state=`), which is what automated tests use.
- `POST /oauth2/token` (client auth by form params or HTTP Basic, not both, as in
  RFC 6749 §2.3.1) → bearer token, or 400 `invalid_grant` / 401 `invalid_client`.
- `GET /oauth2/userinfo` with the bearer token → `{"sub", "phone"?}`.

Codes are single-use, valid 600 s and bound to the redirect_uri; a reused code
also revokes the token first issued for it (RFC 6749 §4.1.2).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from doubles.server import COMMON_FAILURES, Clock, DoubleServer, Request, Response

CODE_TTL = 600.0
TOKEN_TTL = 7200

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def sub_for(client_id: str, user: str) -> str:
    """A pairwise subject, stable per (client_id, user)."""
    return "ssb_" + hmac.new(client_id.encode(), user.encode(), hashlib.sha256).hexdigest()[:32]


def with_query(uri: str, params: dict[str, str]) -> str:
    """Add params to a redirect URI's query (before any #fragment)."""
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@dataclass
class _Code:
    user: str
    redirect_uri: str
    issued_at: float
    used: bool = False
    token: str | None = None


@dataclass
class _Token:
    user: str
    expires_at: float
    revoked: bool = False


class SuishenbanDouble(DoubleServer):
    name = "suishenban"
    failure_kinds = COMMON_FAILURES | {"busy", "rate_limit"}

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        clock: Clock = time.time,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(clock=clock, host=host, port=port)
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.phones: dict[str, str] = {}  # user → verified phone, E.164
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, _Token] = {}

    def mint_code(self, user: str, phone: str | None = None, *, redirect_uri: str | None = None) -> str:
        """A code as if `user` had approved the sign-in; `phone` becomes their verified phone."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            if phone is not None:
                self.phones[user] = phone
            self._codes[code] = _Code(user, redirect_uri or self.redirect_uri, self.clock())
        return code

    def mint_for_demo(self, payload: dict[str, Any]) -> str:
        phone = payload.get("phone")
        return self.mint_code(str(payload.get("user") or "demo"), str(phone) if phone else None)

    def sub(self, user: str) -> str:
        return sub_for(self.client_id, user)

    def handle(self, request: Request) -> Response:
        routes = {
            ("GET", "/oauth2/authorize"): self._authorize,
            ("POST", "/oauth2/authorize"): self._approve,
            ("POST", "/oauth2/token"): self._token,
            ("GET", "/oauth2/userinfo"): self._userinfo,
        }
        route = routes.get((request.method, request.path))
        if route is None:
            return Response.json({"error": "not_found"}, 404)
        return route(request)

    # --- authorization endpoint (browser) ---------------------------------

    def _authorize(self, request: Request) -> Response:
        q = request.query
        if q.get("client_id") != self.client_id or q.get("redirect_uri") != self.redirect_uri:
            # Never redirect to an unverified URI (RFC 6749 §4.1.2.1): show an error page.
            return Response.html("<!doctype html><p>invalid client_id or redirect_uri</p>", 400)
        state = {"state": q["state"]} if q.get("state") else {}
        if q.get("response_type") != "code":
            error = {"error": "unsupported_response_type", **state}
            return Response.redirect(with_query(self.redirect_uri, error))
        if q.get("login_hint"):
            code = self.mint_code(q["login_hint"])
            return Response.redirect(with_query(self.redirect_uri, {"code": code, **state}))
        return Response.html(self._login_page(q.get("state", ""), q.get("user", "demo")))

    def _approve(self, request: Request) -> Response:
        f = request.form
        if f.get("client_id") != self.client_id or f.get("redirect_uri") != self.redirect_uri:
            return Response.html("<!doctype html><p>invalid client_id or redirect_uri</p>", 400)
        state = {"state": f["state"]} if f.get("state") else {}
        if f.get("action") == "deny":
            return Response.redirect(with_query(self.redirect_uri, {"error": "access_denied", **state}))
        code = self.mint_code(f.get("user") or "demo", f.get("phone") or None)
        return Response.redirect(with_query(self.redirect_uri, {"code": code, **state}))

    def _login_page(self, state: str, user: str) -> str:
        def hidden(name: str, value: str) -> str:
            return f'<input type="hidden" name="{name}" value="{html.escape(value)}">'

        phone = self.phones.get(user, "+8613800138000")
        return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>随申办 · 授权登录 (double)</title></head>
<body style="font-family:sans-serif;max-width:28em;margin:2em auto">
<h1>随申办 授权登录</h1><p>“碳普惠”申请获取你的身份标识和手机号。(测试替身 / test double)</p>
<form method="post" action="/oauth2/authorize">
{hidden("client_id", self.client_id)}{hidden("redirect_uri", self.redirect_uri)}{hidden("state", state)}
<label>用户 user <input name="user" value="{html.escape(user)}"></label><br>
<label>手机 phone <input name="phone" value="{html.escape(phone)}"></label><br>
<button name="action" value="approve">同意并登录</button>
<button name="action" value="deny">拒绝</button>
</form></body></html>"""

    # --- token endpoint ---------------------------------------------------

    def _client_credentials(self, request: Request) -> tuple[str, str, bool] | None:
        """(client_id, secret, via_basic), or None if the client used two methods at once."""
        auth = request.headers.get("authorization", "")
        form_secret = request.form.get("client_secret")
        if auth.lower().startswith("basic "):
            if form_secret:
                return None
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
                client_id, _, secret = decoded.partition(":")
            except ValueError:
                return "", "", True
            return unquote_plus(client_id), unquote_plus(secret), True
        return request.form.get("client_id", ""), form_secret or "", False

    def _token(self, request: Request) -> Response:
        credentials = self._client_credentials(request)
        if credentials is None:
            return self._oauth_error("invalid_request", 400, "more than one client authentication method")
        client_id, secret, via_basic = credentials
        secret_ok = hmac.compare_digest(secret.encode(), self.client_secret.encode())
        if client_id != self.client_id or not secret_ok:
            headers = {"WWW-Authenticate": 'Basic realm="suishenban"'} if via_basic else {}
            return self._oauth_error("invalid_client", 401, "client authentication failed", headers)
        f = request.form
        if f.get("grant_type") != "authorization_code":
            return self._oauth_error("unsupported_grant_type", 400)
        if not f.get("code"):
            return self._oauth_error("invalid_request", 400, "code is required")
        now = self.clock()
        with self._lock:
            code = self._codes.get(f["code"])
            if code is None or now - code.issued_at > CODE_TTL:
                return self._oauth_error("invalid_grant", 400, "code is invalid or expired")
            if code.used:
                if code.token in self._tokens:
                    self._tokens[code.token].revoked = True
                return self._oauth_error("invalid_grant", 400, "code has already been used")
            if f.get("redirect_uri") != code.redirect_uri:
                return self._oauth_error("invalid_grant", 400, "redirect_uri does not match")
            code.used = True
            token = secrets.token_urlsafe(32)
            code.token = token
            self._tokens[token] = _Token(code.user, now + TOKEN_TTL)
        return Response.json({"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL},
                             headers=_NO_STORE)

    # --- userinfo endpoint ------------------------------------------------

    def _userinfo(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        with self._lock:
            record = self._tokens.get(token)
            valid = record is not None and not record.revoked and self.clock() < record.expires_at
        if not valid or record is None:
            return Response.json({"error": "invalid_token"}, 401,
                                 headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        body: dict[str, Any] = {"sub": self.sub(record.user)}
        if record.user in self.phones:
            body["phone"] = self.phones[record.user]
        return Response.json(body)

    # --- errors -------------------------------------------------------------

    def failure_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return self._oauth_error("slow_down", 429, "too many requests", {"Retry-After": "60"})
        return self._oauth_error("temporarily_unavailable", 503, "service busy")

    @staticmethod
    def _oauth_error(error: str, status: int, description: str = "",
                     headers: dict[str, str] | None = None) -> Response:
        body = {"error": error, **({"error_description": description} if description else {})}
        return Response.json(body, status, headers={**_NO_STORE, **(headers or {})})
