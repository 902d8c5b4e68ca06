"""Partner request signatures: HMAC-SHA256 over `timestamp\\nnonce\\nbody` (the raw body bytes).

Like WeChat Pay v3 and Stripe webhooks: the partner sends

    X-Partner-Key   its key id
    X-Timestamp     unix seconds; more than PARTNER_SIGNATURE_WINDOW (300 s) of skew is refused
    X-Nonce         16-64 characters [A-Za-z0-9_-], never reused within PARTNER_NONCE_TTL (600 s)
    X-Signature     hex HMAC-SHA256, keyed with the secret's UTF-8 bytes, over
                    timestamp + "\\n" + nonce + "\\n" + raw request body

The signature is checked on the bytes as received (`request.get_data()`), never on re-serialised
JSON, and compared in constant time. The nonce is recorded only after the signature verifies, so
unsigned garbage cannot burn a partner's nonces. Every failure is one 401 `invalid_signature`
(except `nonce_reused`, and 403 `partner_suspended` for a correctly signed call from a suspended
partner), so a caller learns nothing about which key ids exist.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request

from app.errors import AppError
from app.extensions import limiter, redis_client
from app.models_base import utcnow
from app.partners.service import signing_secret

PARTNER_SECURITY = [{"partnerSignature": []}]
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def signature_for(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def invalid_signature(message: str = "The request signature is invalid.") -> AppError:
    return AppError("invalid_signature", message, "请求签名无效。", 401)


def verify_partner_request() -> None:
    """Authenticate the current request as a partner or raise; sets g.partner and the scopes."""
    headers = request.headers
    key_id = headers.get("X-Partner-Key", "")
    timestamp = headers.get("X-Timestamp", "")
    nonce = headers.get("X-Nonce", "")
    signature = headers.get("X-Signature", "")
    if not (_KEY_ID.fullmatch(key_id) and _TIMESTAMP.fullmatch(timestamp) and _NONCE.fullmatch(nonce)
            and signature):
        raise invalid_signature(
            "Sign the request: X-Partner-Key, X-Timestamp (unix seconds), X-Nonce (16-64 of A-Z a-z 0-9 _ -) "
            "and X-Signature are required."
        )
    window = current_app.config["PARTNER_SIGNATURE_WINDOW"]
    if abs(time.time() - int(timestamp)) > window:
        raise invalid_signature(f"X-Timestamp is more than {window} seconds from our clock.")
    body = request.get_data(cache=True)  # raw bytes; raises 413 beyond MAX_CONTENT_LENGTH
    found = signing_secret(key_id, utcnow())
    expected = signature_for(found[1] if found else "", timestamp, nonce, body)
    provided = signature.encode("latin-1", "replace")
    if not hmac.compare_digest(expected.encode(), provided) or found is None:
        raise invalid_signature()
    partner = found[0]
    if partner.status != "active":
        raise AppError("partner_suspended", "This partner is suspended.", "该合作方已被暂停。", 403)
    ttl = current_app.config["PARTNER_NONCE_TTL"]
    if not redis_client().set(f"partner-nonce:{key_id}:{nonce}", b"1", nx=True, ex=ttl):
        raise AppError("nonce_reused", "This nonce was already used.", "该随机数已被使用，请勿重放请求。", 401)
    g.partner = partner
    g.partner_id = partner.id
    g.rate_limit_subject = f"partner:{partner.id}"
    g.idempotency_scope = f"partner:{partner.id}"


def partner_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """The view answers only correctly signed, fresh requests from an active partner."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verify_partner_request()
        return view(*args, **kwargs)

    return wrapper


def _partner_limit() -> str:
    return current_app.config["RATELIMIT_PARTNER"]


def partner_rate_limit() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Flask-Limiter, per partner (g.rate_limit_subject): put it under @partner_required."""
    return limiter.limit(_partner_limit)
