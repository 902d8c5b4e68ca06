"""A loopback double of WeChat's mini-program code2Session endpoint.

Behaves like `GET https://api.weixin.qq.com/sns/jscode2session`: HTTP 200 for
everything, errors as `{"errcode": ..., "errmsg": "..., rid: ..."}` in the body,
codes single-use and valid 5 minutes, 100 calls per user per minute, a
deterministic openid per (appid, user), unionid only when the user is flagged,
and a fresh random session_key per login.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from doubles.server import COMMON_FAILURES, Clock, DoubleServer, Request, Response

CODE_TTL = 300.0
CALLS_PER_USER_PER_MINUTE = 100

ERRORS: dict[int, str] = {
    -1: "system error",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "high risk user",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
}
_FAILURE_ERRCODES = {"busy": -1, "rate_limit": 45011, "high_risk": 40226}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def openid_for(appid: str, user: str) -> str:
    """28 characters starting with "o", like WeChat's; stable per (appid, user)."""
    return "o" + _b64url(hmac.new(appid.encode(), user.encode(), hashlib.sha256).digest())[:27]


def unionid_for(user: str) -> str:
    """Stable per user across appids, as a unionid is across one open-platform account."""
    return "o" + _b64url(hmac.new(b"unionid", user.encode(), hashlib.sha256).digest())[:27]


@dataclass
class _Code:
    user: str
    unionid: bool
    issued_at: float
    used: bool = False


class WeChatDouble(DoubleServer):
    name = "wechat"
    failure_kinds = COMMON_FAILURES | set(_FAILURE_ERRCODES)

    def __init__(self, appid: str, secret: str, clock: Clock = time.time, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(clock=clock, host=host, port=port)
        self.appid = appid
        self.secret = secret
        self._codes: dict[str, _Code] = {}
        self._calls: dict[str, list[float]] = {}
        self.session_keys_issued: list[str] = []  # so tests can look for leaks

    def mint_code(self, user: str, *, unionid: bool = False) -> str:
        """What `wx.login()` would hand the mini-program for this user."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(user, unionid, self.clock())
        return code

    def mint_for_demo(self, payload: dict[str, Any]) -> str:
        return self.mint_code(str(payload.get("user") or "demo"), unionid=bool(payload.get("unionid")))

    def openid(self, user: str) -> str:
        return openid_for(self.appid, user)

    def handle(self, request: Request) -> Response:
        if request.path != "/sns/jscode2session":
            return Response.json({"errcode": 404, "errmsg": "Not Found"}, 404)
        if request.method != "GET":
            return Response.json({"errcode": 43001, "errmsg": "require GET method"}, 200)
        q = request.query
        checks = (
            (not q.get("appid"), 41002),
            (q.get("appid") != self.appid, 40013),
            (not q.get("secret"), 41004),
            (not hmac.compare_digest(q.get("secret", "").encode(), self.secret.encode()), 40125),
            (q.get("grant_type") != "authorization_code", 40002),
            (not q.get("js_code"), 41008),
        )
        for failed, errcode in checks:
            if failed:
                return self._error(errcode)
        return self._login(q["js_code"])

    def _login(self, js_code: str) -> Response:
        now = self.clock()
        with self._lock:
            code = self._codes.get(js_code)
            if code is None or now - code.issued_at > CODE_TTL:
                return self._error(40029)
            if code.used:
                return self._error(40163)
            calls = [t for t in self._calls.get(code.user, []) if now - t < 60.0]
            if len(calls) >= CALLS_PER_USER_PER_MINUTE:
                return self._error(45011)
            self._calls[code.user] = [*calls, now]
            code.used = True
            session_key = base64.b64encode(secrets.token_bytes(16)).decode()
            self.session_keys_issued.append(session_key)
        body: dict[str, Any] = {"session_key": session_key, "openid": self.openid(code.user)}
        if code.unionid:
            body["unionid"] = unionid_for(code.user)
        return self._reply(body)

    def failure_response(self, kind: str, request: Request) -> Response:
        return self._error(_FAILURE_ERRCODES[kind])

    def _error(self, errcode: int) -> Response:
        rid = secrets.token_hex(12)
        return self._reply({"errcode": errcode, "errmsg": f"{ERRORS.get(errcode, 'error')}, rid: {rid}"})

    @staticmethod
    def _reply(body: dict[str, Any]) -> Response:
        # WeChat serves this endpoint as text/plain; clients must not rely on the header.
        return Response.json(body, 200, content_type="text/plain")
