"""Outbound clients for the three identity providers citizens sign in with.

Each client turns a one-time login code from the mini-program or H5 page into a
`ProviderIdentity` and nothing more: WeChat's `session_key`, provider access
tokens and our app secrets stay inside this module and are never logged. Logs
name only the provider and its error code, because codes, secrets, tokens and
phones are credentials or personal data.

Every provider failure becomes an `AppError` with a stable code:

=========================  ======  ==================================================
code                       status  when
=========================  ======  ==================================================
invalid_login_code         401     the citizen's code is unknown, expired or used
                                   (WeChat 40029/40163, Alipay isv.code-invalid,
                                   Suishenban invalid_grant), or empty
provider_rate_limited      429     WeChat 45011, HTTP 429
provider_high_risk_user    403     WeChat 40226 (WeChat flags the user as high risk)
provider_unavailable       502     busy (-1, Alipay 20000), HTTP 5xx, timeouts,
                                   connection errors, malformed answers, and our own
                                   misconfiguration (wrong appid/secret/key/client),
                                   which the citizen cannot fix; it is logged at ERROR
=========================  ======  ==================================================
"""
from __future__ import annotations

import base64
import ipaddress
import json
import logging
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.errors import AppError

logger = logging.getLogger(__name__)

_SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


@dataclass(frozen=True)
class ProviderIdentity:
    """Who the provider says the citizen is; safe to pass around (no secrets)."""

    provider: str  # "wechat" | "alipay" | "suishenban"
    subject: str  # openid / Alipay user_id (or open_id) / Suishenban sub
    unionid: str | None = None
    phone: str | None = None  # only Suishenban; E.164 (+8613800138000); never log it


class IdentityProvider(Protocol):
    name: str

    def exchange(self, code: str) -> ProviderIdentity: ...


# --- errors -----------------------------------------------------------------

def invalid_login_code() -> AppError:
    return AppError(
        "invalid_login_code", "The login code is invalid or expired.", "登录凭证无效或已过期。", 401
    )


def provider_rate_limited() -> AppError:
    return AppError(
        "provider_rate_limited",
        "Too many sign-in attempts; please try again in a minute.",
        "登录尝试过于频繁，请一分钟后再试。",
        429,
    )


def provider_high_risk_user() -> AppError:
    return AppError(
        "provider_high_risk_user",
        "The sign-in provider flagged this account as high risk.",
        "登录平台判定该账号存在风险，暂时无法登录。",
        403,
    )


def provider_unavailable() -> AppError:
    return AppError(
        "provider_unavailable",
        "The sign-in service is unavailable; please try again later.",
        "登录服务暂时不可用，请稍后再试。",
        502,
    )


# --- URL policy (SSRF) ------------------------------------------------------

def check_provider_url(url: str, *, production: bool) -> None:
    """Refuse a provider base URL we must not call.

    Outside production any http(s) URL is fine (the doubles run on loopback).
    In production only https to a public host: no loopback, private or
    link-local literal, no `localhost`, no credentials in the URL. This is a
    configuration check; it does not resolve DNS names.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"provider URL must be http(s) with a host, got host {host!r}")
    parts.port  # noqa: B018 - raises ValueError on a malformed port
    if not production:
        return
    if parts.scheme != "https":
        raise ValueError(f"provider URL for host {host!r} must use https in production")
    if parts.username or parts.password:
        raise ValueError(f"provider URL for host {host!r} must not carry credentials")
    if host == "localhost" or host.endswith(".localhost"):
        raise ValueError(f"provider URL host {host!r} is loopback; not allowed in production")
    address = _ip_literal(host)
    if address is not None and not address.is_global:
        raise ValueError(f"provider URL host {host!r} is not a public address; not allowed in production")


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host literal denotes, including forms like `127.1` or `0x7f000001`
    that the resolver accepts as IPv4; None for a DNS name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[0-9a-fA-FxX.]+", host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# --- keep credentials out of urllib3's debug log -----------------------------

_SENSITIVE_QUERY = re.compile(
    r"((?:secret|js_code|code|client_secret|access_token|refresh_token|session_key|sign)=)[^&\s\"']*"
)


class _RedactQueryFilter(logging.Filter):
    """urllib3 logs every request line at DEBUG, query string included; WeChat's API
    puts the app secret and the login code in the query, so redact them there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SENSITIVE_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


_urllib3_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _RedactQueryFilter) for f in _urllib3_log.filters):
    _urllib3_log.addFilter(_RedactQueryFilter())


# --- shared HTTP plumbing ---------------------------------------------------

class _HttpClient:
    name = "provider"

    def __init__(self, base_url: str, timeout: float, session: requests.Session | None) -> None:
        check_provider_url(base_url, production=False)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request; network failures become provider_unavailable. The exception text
        is never logged: urllib3 puts the full URL (with WeChat's secret) into it."""
        try:
            return self._session.request(
                method, self.base_url + path, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            logger.warning("%s: request failed: %s", self.name, type(exc).__name__)
            raise provider_unavailable() from None

    def _json_object(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            logger.warning("%s: malformed answer (HTTP %s)", self.name, response.status_code)
            raise provider_unavailable()
        return body

    def _misconfigured(self, detail: str) -> AppError:
        logger.error("%s: rejected our client configuration: %s", self.name, detail)
        return provider_unavailable()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- WeChat mini-program: code2Session ---------------------------------------

_WECHAT_INVALID_CODE = {40029, 40163}  # invalid code, code been used
_WECHAT_MISCONFIGURED = {40013, 40125, 40002, 41002, 41004, 41008, 40001, 40164, 48001, 61024}


class WeChatClient:
    """code2Session. WeChat answers errors with HTTP 200 and `errcode` in the body.

    The `session_key` it returns is dropped here: we never decrypt client data with it
    (phone numbers come from Suishenban), so it has no reason to exist elsewhere.
    """

    name = "wechat"

    def __init__(
        self,
        base_url: str,
        appid: str,
        secret: str,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self._http = _HttpClient(base_url, timeout, session)
        self._http.name = self.name
        self.appid = appid
        self._secret = secret

    def __repr__(self) -> str:
        return f"WeChatClient(base_url={self._http.base_url!r}, appid={self.appid!r})"

    def exchange(self, code: str) -> ProviderIdentity:
        if not code:
            raise invalid_login_code()
        response = self._http._call(
            "GET",
            "/sns/jscode2session",
            params={
                "appid": self.appid,
                "secret": self._secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        if response.status_code != 200:
            logger.warning("wechat: HTTP %s", response.status_code)
            raise provider_unavailable()
        body = self._http._json_object(response)
        errcode = body.get("errcode", 0)
        if errcode not in (0, None):
            raise self._error(errcode)
        openid = _text(body.get("openid"))
        if openid is None:
            logger.warning("wechat: answer without openid")
            raise provider_unavailable()
        return ProviderIdentity(provider=self.name, subject=openid, unionid=_text(body.get("unionid")))

    def _error(self, errcode: Any) -> AppError:
        if errcode in _WECHAT_INVALID_CODE:
            logger.info("wechat: login code refused, errcode=%s", errcode)
            return invalid_login_code()
        if errcode == 45011:
            logger.warning("wechat: rate limited, errcode=%s", errcode)
            return provider_rate_limited()
        if errcode == 40226:
            logger.warning("wechat: high-risk user, errcode=%s", errcode)
            return provider_high_risk_user()
        if errcode in _WECHAT_MISCONFIGURED:
            return self._http._misconfigured(f"errcode={errcode}")
        logger.warning("wechat: provider error, errcode=%s", errcode)
        return provider_unavailable()


# --- Alipay mini-program: alipay.system.oauth.token -------------------------

_ALIPAY_METHOD = "alipay.system.oauth.token"
_ALIPAY_RESPONSE_KEY = "alipay_system_oauth_token_response"
_ALIPAY_INVALID_CODE = {"isv.code-invalid", "isv.code-expired", "isv.auth-code-invalid"}


def _pem(text: str, label: str) -> bytes:
    """A PEM document; Alipay's key tool prints bare base64 bodies, so wrap those."""
    text = text.strip()
    if "-----BEGIN" in text:
        return text.encode()
    compact = re.sub(r"\s+", "", text)
    body = "\n".join(compact[i:i + 64] for i in range(0, len(compact), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode()


def load_rsa_private_key(pem_or_base64: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(_pem(pem_or_base64, "PRIVATE KEY"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("Alipay keys must be RSA (sign_type RSA2)")
    return key


def load_rsa_public_key(pem_or_base64: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(_pem(pem_or_base64, "PUBLIC KEY"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("Alipay keys must be RSA (sign_type RSA2)")
    return key


def alipay_sign_content(params: dict[str, str]) -> str:
    """Alipay's string to sign: every non-empty parameter except `sign`, sorted by name, `k=v&k=v`."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v not in (None, ""))


def rsa2_sign(key: rsa.RSAPrivateKey, content: str) -> str:
    return base64.b64encode(key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_verify(key: rsa.RSAPublicKey, content: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), content.encode("utf-8"),
                   padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def _raw_json_member(text: str, key: str) -> str | None:
    """The exact text of `"key": {...}` in a JSON document, which is what Alipay signs."""
    match = re.search(rf'"{re.escape(key)}"\s*:\s*', text)
    if match is None:
        return None
    try:
        _, end = json.JSONDecoder().raw_decode(text, match.end())
    except ValueError:
        return None
    return text[match.end():end]


class AlipayClient:
    """alipay.system.oauth.token through the open-platform gateway, signed RSA2.

    The subject is Alipay's `user_id` (2088…) when the app receives it, else `open_id`
    (apps created in open_id mode get only that); Alipay has no unionid.
    If `alipay_public_key_pem` is given, the gateway's signature over the answer is
    verified too (an extension to the agreed interface; recommended in production).
    """

    name = "alipay"

    def __init__(
        self,
        base_url: str,
        app_id: str,
        private_key_pem: str,
        timeout: float = 5.0,
        session: requests.Session | None = None,
        alipay_public_key_pem: str | None = None,
    ) -> None:
        self._http = _HttpClient(base_url, timeout, session)
        self._http.name = self.name
        self.app_id = app_id
        self._key = load_rsa_private_key(private_key_pem)
        self._alipay_key = load_rsa_public_key(alipay_public_key_pem) if alipay_public_key_pem else None

    def __repr__(self) -> str:
        return f"AlipayClient(base_url={self._http.base_url!r}, app_id={self.app_id!r})"

    def exchange(self, code: str) -> ProviderIdentity:
        if not code:
            raise invalid_login_code()
        params = {
            "app_id": self.app_id,
            "method": _ALIPAY_METHOD,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": datetime.now(_SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "grant_type": "authorization_code",
            "code": code,
        }
        params["sign"] = rsa2_sign(self._key, alipay_sign_content(params))
        response = self._http._call(
            "POST",
            "/gateway.do",
            data=params,
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        )
        if response.status_code != 200:
            logger.warning("alipay: HTTP %s", response.status_code)
            raise provider_unavailable()
        body = self._http._json_object(response)
        if "error_response" in body:
            self._verify(response, body, "error_response")
            raise self._error(body.get("error_response"))
        result = body.get(_ALIPAY_RESPONSE_KEY)
        if not isinstance(result, dict):
            logger.warning("alipay: answer without %s", _ALIPAY_RESPONSE_KEY)
            raise provider_unavailable()
        self._verify(response, body, _ALIPAY_RESPONSE_KEY)
        if result.get("code") not in (None, "10000"):
            raise self._error(result)
        subject = _text(result.get("user_id")) or _text(result.get("open_id"))
        if subject is None:
            logger.warning("alipay: answer without user_id/open_id")
            raise provider_unavailable()
        return ProviderIdentity(provider=self.name, subject=subject)

    def _verify(self, response: requests.Response, body: dict[str, Any], key: str) -> None:
        if self._alipay_key is None:
            return
        raw = _raw_json_member(response.content.decode("utf-8", "replace"), key)
        signature = body.get("sign")
        if raw is None or not isinstance(signature, str) or not rsa2_verify(self._alipay_key, raw, signature):
            logger.error("alipay: answer signature did not verify")
            raise provider_unavailable()

    def _error(self, error: Any) -> AppError:
        error = error if isinstance(error, dict) else {}
        code, sub_code = str(error.get("code", "")), str(error.get("sub_code", ""))
        if sub_code in _ALIPAY_INVALID_CODE:
            logger.info("alipay: login code refused, code=%s sub_code=%s", code, sub_code)
            return invalid_login_code()
        if code.startswith("4"):  # 40001 missing / 40002 invalid argument / 40006 permission: ours
            return self._http._misconfigured(f"code={code} sub_code={sub_code}")
        logger.warning("alipay: provider error, code=%s sub_code=%s", code, sub_code)
        return provider_unavailable()


# --- Suishenban (随申办) H5: OAuth2 authorization code -------------------------

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_CN_MOBILE = re.compile(r"(?:86)?(1[3-9]\d{9})")


def _normalise_phone(value: Any) -> str | None:
    """E.164, or None. Suishenban may send a bare 11-digit mainland mobile."""
    if not isinstance(value, str):
        return None
    value = re.sub(r"[\s-]", "", value)
    if _E164.fullmatch(value):
        return value
    mobile = _CN_MOBILE.fullmatch(value)
    return f"+86{mobile.group(1)}" if mobile else None


class SuishenbanClient:
    """OAuth2 authorization-code flow (client_secret_post), then the userinfo endpoint.

    Redirects are never followed (SSRF). An `invalid_client` answer means our
    credentials are wrong: 502 `provider_unavailable`, logged at ERROR.
    """

    name = "suishenban"

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self._http = _HttpClient(base_url, timeout, session)
        self._http.name = self.name
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri

    def __repr__(self) -> str:
        return f"SuishenbanClient(base_url={self._http.base_url!r}, client_id={self.client_id!r})"

    def authorize_url(self, state: str) -> str:
        """Where the H5 page sends the citizen; Suishenban returns to redirect_uri?code=&state=."""
        query = urlencode({
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
        })
        return f"{self._http.base_url}/oauth2/authorize?{query}"

    def exchange(self, code: str) -> ProviderIdentity:
        if not code:
            raise invalid_login_code()
        access_token = self._token(code)
        response = self._http._call(
            "GET",
            "/oauth2/userinfo",
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        if response.status_code != 200:
            raise self._error(response, "userinfo")
        info = self._http._json_object(response)
        subject = _text(info.get("sub"))
        if subject is None:
            logger.warning("suishenban: userinfo without sub")
            raise provider_unavailable()
        phone = _normalise_phone(info.get("phone"))
        if info.get("phone") and phone is None:
            logger.warning("suishenban: phone in an unrecognised format dropped")
        return ProviderIdentity(provider=self.name, subject=subject, phone=phone)

    def _token(self, code: str) -> str:
        response = self._http._call(
            "POST",
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "client_id": self.client_id,
                "client_secret": self._client_secret,
            },
            headers={"Accept": "application/json"},
        )
        if response.status_code != 200:
            raise self._error(response, "token")
        body = self._http._json_object(response)
        token = _text(body.get("access_token"))
        if token is None or str(body.get("token_type", "")).lower() != "bearer":
            logger.warning("suishenban: token answer without a bearer access_token")
            raise provider_unavailable()
        return token

    def _error(self, response: requests.Response, step: str) -> AppError:
        status = response.status_code
        try:
            error = json.loads(response.content).get("error")
        except (ValueError, AttributeError):
            error = None
        error = error if isinstance(error, str) else ""
        if step == "token" and status == 400 and error == "invalid_grant":
            logger.info("suishenban: login code refused, error=invalid_grant")
            return invalid_login_code()
        if status == 429:
            logger.warning("suishenban: rate limited at %s", step)
            return provider_rate_limited()
        if status in (400, 401, 403):
            return self._http._misconfigured(f"{step} HTTP {status} error={error!r}")
        logger.warning("suishenban: %s failed, HTTP %s error=%r", step, status, error)
        return provider_unavailable()
