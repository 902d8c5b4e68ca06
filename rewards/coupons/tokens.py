"""Rotating coupon tokens: what the QR code carries, and the short numeric code typed when a scan fails.

A token is `c1.<coupon id>.<issued at, unix seconds>.<HMAC-SHA256, 128 bits, base64url>` under a
server key; it is fresh for TOKEN_TTL seconds, so a screenshot is useless a minute later. The short
code is 8 digits derived (HMAC) from the same token and registered in Redis under the merchant's
namespace for the same 60 s (SET NX; on a collision with another coupon the next derivation is
tried). The Redis value also carries the issue time, so freshness is checked against our clock
too (not only Redis' TTL).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app

from app.errors import AppError
from app.extensions import redis_client
from app.models_base import utcnow

TOKEN_TTL = 60  # seconds
TOKEN_PREFIX = "c1"
SHORT_CODE_DIGITS = 8
_SHORT_CODE_ATTEMPTS = 8
_CLOCK_SKEW = 5  # seconds a token may claim to come from the future (several API processes)


@dataclass(frozen=True)
class CouponToken:
    token: str
    short_code: str
    issued_at: datetime
    expires_at: datetime


def _key() -> bytes:
    """COUPON_TOKEN_KEY from the config, else a key derived from SECRET_KEY (never the raw secret)."""
    configured = current_app.config.get("COUPON_TOKEN_KEY")
    if configured:
        return configured.encode() if isinstance(configured, str) else bytes(configured)
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, b"coupon-token-key", hashlib.sha256).digest()


def _signature(key: bytes, coupon_id: int, issued: int) -> str:
    mac = hmac.new(key, f"{TOKEN_PREFIX}.{coupon_id}.{issued}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _short_code_key(merchant_id: int, code: str) -> str:
    return f"coupon:code:{merchant_id}:{code}"


def derive_short_code(key: bytes, token: str, attempt: int) -> str:
    digest = hmac.new(key, f"short:{attempt}:{token}".encode(), hashlib.sha256).digest()
    return str(int.from_bytes(digest[:8], "big") % 10**SHORT_CODE_DIGITS).zfill(SHORT_CODE_DIGITS)


def issue(coupon_id: int, merchant_id: int) -> CouponToken:
    """A fresh token for the coupon and its short code, registered for TOKEN_TTL seconds."""
    key = _key()
    now = utcnow()
    issued = int(now.timestamp())
    token = f"{TOKEN_PREFIX}.{coupon_id}.{issued}.{_signature(key, coupon_id, issued)}"
    redis = redis_client()
    value = f"{coupon_id}:{issued}"
    for attempt in range(_SHORT_CODE_ATTEMPTS):
        code = derive_short_code(key, token, attempt)
        name = _short_code_key(merchant_id, code)
        if redis.set(name, value, nx=True, ex=TOKEN_TTL):
            break
        current = redis.get(name)
        if current is not None and current.decode().split(":", 1)[0] == str(coupon_id):
            redis.set(name, value, ex=TOKEN_TTL)  # this coupon's own earlier code: refresh it
            break
    else:  # 8 collisions in a row among 10^8 codes of one merchant: effectively never
        raise AppError("short_code_unavailable", "No short code is free right now; try again.",
                       "暂无可用的数字码，请重试。", 503)
    issued_at = datetime.fromtimestamp(issued, UTC)
    return CouponToken(token=token, short_code=code, issued_at=issued_at,
                       expires_at=issued_at + timedelta(seconds=TOKEN_TTL))


def invalid_token() -> AppError:
    return AppError("invalid_coupon_token", "This is not a valid coupon code.", "这不是有效的券码。", 400)


def token_expired() -> AppError:
    return AppError(
        "token_expired",
        "The coupon code has expired or is unknown; ask the customer to refresh the coupon's QR code.",
        "券码已过期或不存在，请顾客刷新券的二维码。",
        409,
    )


def _check_fresh(issued: int) -> None:
    age = utcnow().timestamp() - issued
    if age > TOKEN_TTL or age < -_CLOCK_SKEW:
        raise token_expired()


def coupon_of_token(token: str) -> int:
    """The coupon id a scanned token names, if its signature is right and it is still fresh."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_PREFIX or not parts[1].isdigit() or not parts[2].isdigit():
        raise invalid_token()
    coupon_id, issued = int(parts[1]), int(parts[2])
    if not 0 < coupon_id < 2**63 or issued > 2**40:
        raise invalid_token()
    if not hmac.compare_digest(parts[3], _signature(_key(), coupon_id, issued)):
        raise invalid_token()
    _check_fresh(issued)
    return coupon_id


def coupon_of_short_code(merchant_id: int, code: str) -> int:
    """The coupon id a typed short code names in this merchant's namespace (409 token_expired if none)."""
    value = redis_client().get(_short_code_key(merchant_id, code))
    if value is None:
        raise token_expired()
    coupon_id, _, issued = value.decode().partition(":")
    _check_fresh(int(issued))
    return int(coupon_id)
