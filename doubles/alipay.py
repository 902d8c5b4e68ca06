"""A loopback double of Alipay's open-platform gateway for alipay.system.oauth.token.

Like `POST https://openapi.alipay.com/gateway.do`: common parameters checked in
Alipay's order, the RSA2 signature verified with the app's public key, errors as
`error_response` with Alipay's code/sub_code, every answer signed with the
double's own "Alipay" key (`alipay_public_key_pem` lets clients verify it).
Auth codes are single-use and expire after a day unused; user_id is stable per
user, open_id per (app_id, user).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.auth.providers import alipay_sign_content, load_rsa_public_key, rsa2_sign, rsa2_verify
from doubles.server import COMMON_FAILURES, Clock, DoubleServer, Request, Response

CODE_TTL = 24 * 3600.0
METHOD = "alipay.system.oauth.token"
RESPONSE_KEY = "alipay_system_oauth_token_response"

_MISSING = ("40001", "Missing Required Arguments")
_INVALID = ("40002", "Invalid Arguments")
_BUSY = ("20000", "Service Currently Unavailable")


def user_id_for(user: str) -> str:
    """16 digits starting 2088, like Alipay's user_id; stable per user across apps."""
    digest = int.from_bytes(hmac.new(b"alipay-user", user.encode(), hashlib.sha256).digest()[:8], "big")
    return f"2088{digest % 10**12:012d}"


def open_id_for(app_id: str, user: str) -> str:
    """A 47-character alphanumeric id starting with 0, stable per (app_id, user)."""
    raw = base64.b64encode(hmac.new(app_id.encode(), user.encode(), hashlib.sha512).digest()).decode()
    return "0" + "".join(ch for ch in raw if ch.isalnum())[:46]


@dataclass
class _Code:
    user: str
    issued_at: float
    used: bool = False


class AlipayDouble(DoubleServer):
    name = "alipay"
    failure_kinds = COMMON_FAILURES | {"busy"}

    def __init__(
        self,
        app_id: str,
        app_public_key_pem: str,
        clock: Clock = time.time,
        *,
        alipay_private_key: rsa.RSAPrivateKey | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(clock=clock, host=host, port=port)
        self.app_id = app_id
        self._app_key = load_rsa_public_key(app_public_key_pem)
        # The key "Alipay" signs its answers with (tests pass one to save generating it).
        self._alipay_key = alipay_private_key or rsa.generate_private_key(65537, 2048)
        self._codes: dict[str, _Code] = {}

    @property
    def alipay_public_key_pem(self) -> str:
        return self._alipay_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def mint_code(self, user: str) -> str:
        """What `my.getAuthCode()` would hand the mini-program for this user."""
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = _Code(user, self.clock())
        return code

    def mint_for_demo(self, payload: dict[str, Any]) -> str:
        return self.mint_code(str(payload.get("user") or "demo"))

    def user_id(self, user: str) -> str:
        return user_id_for(user)

    def open_id(self, user: str) -> str:
        return open_id_for(self.app_id, user)

    def handle(self, request: Request) -> Response:
        if request.path != "/gateway.do":
            return Response.html("<html><body>404 Not Found</body></html>", 404)
        params = {**request.query, **request.form}
        error = self._check_common(params)
        if error is not None:
            return self._error(*error)
        if params.get("grant_type") != "authorization_code":
            return self._error(*_INVALID, "isv.grant-type-invalid", "grant_type参数不正确")
        return self._exchange(params.get("code", ""))

    def _check_common(self, p: dict[str, str]) -> tuple[str, str, str, str] | None:
        """Alipay checks the common parameters before it looks at the method's own."""
        if not p.get("app_id"):
            return (*_MISSING, "isv.missing-app-id", "缺少AppID参数")
        if not p.get("method"):
            return (*_MISSING, "isv.missing-method", "缺少方法名参数")
        if not p.get("sign"):
            return (*_MISSING, "isv.missing-signature", "缺少签名参数")
        if not p.get("sign_type"):
            return (*_MISSING, "isv.missing-signature-type", "缺少签名类型参数")
        if not p.get("timestamp"):
            return (*_MISSING, "isv.missing-timestamp", "缺少时间戳参数")
        if not p.get("version"):
            return (*_MISSING, "isv.missing-version", "缺少版本参数")
        if p["app_id"] != self.app_id:
            return (*_INVALID, "isv.invalid-app-id", "无效的AppID参数")
        if p["method"] != METHOD:
            return (*_INVALID, "isv.invalid-method", "不存在的方法名")
        if p["version"] != "1.0":
            return (*_INVALID, "isv.invalid-version", "非法的版本参数")
        if p.get("format", "JSON").upper() != "JSON":
            return (*_INVALID, "isv.invalid-format", "无效的数据格式参数")
        if p.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
            return (*_INVALID, "isv.invalid-charset", "字符集错误")
        if p["sign_type"] != "RSA2":
            return (*_INVALID, "isv.invalid-signature-type", "无效签名类型")
        try:
            datetime.strptime(p["timestamp"], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return (*_INVALID, "isv.invalid-timestamp", "非法的时间戳参数")
        if not rsa2_verify(self._app_key, alipay_sign_content(p), p["sign"]):
            return (*_INVALID, "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配")  # noqa: E501
        return None

    def _exchange(self, auth_code: str) -> Response:
        now = self.clock()
        with self._lock:
            code = self._codes.get(auth_code)
            if code is None or code.used or now - code.issued_at > CODE_TTL:
                return self._error(*_INVALID, "isv.code-invalid", "授权码code无效")
            code.used = True
        issued = datetime.fromtimestamp(now, timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
        return self._signed(RESPONSE_KEY, {
            "user_id": self.user_id(code.user),
            "open_id": self.open_id(code.user),
            "access_token": "authusrB" + secrets.token_hex(16),
            "expires_in": 1296000,
            "refresh_token": "authusrB" + secrets.token_hex(16),
            "re_expires_in": 2592000,
            "auth_start": issued,
        })

    def failure_response(self, kind: str, request: Request) -> Response:
        return self._error(*_BUSY, "isp.unknow-error", "系统繁忙")  # sic: Alipay's spelling

    def _error(self, code: str, msg: str, sub_code: str, sub_msg: str) -> Response:
        node = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}
        return self._signed("error_response", node)

    def _signed(self, key: str, node: dict[str, Any]) -> Response:
        """Alipay signs the exact text of the response node and puts `sign` beside it."""
        raw = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
        sign = rsa2_sign(self._alipay_key, raw)
        text = '{"%s":%s,"sign":"%s"}' % (key, raw, sign)  # noqa: UP031 - the node's raw text must be kept
        return Response(200, text.encode("utf-8"), {"Content-Type": "text/html;charset=utf-8"})
