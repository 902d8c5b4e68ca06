"""Signing helper for partner calls, shared by the tests and the ingest benchmark.

It mirrors what a partner implements: HMAC-SHA256 with the secret over
`timestamp + "\\n" + nonce + "\\n" + raw body bytes`, hex-encoded, in four headers.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any


def sign(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    key_id: str,
    secret: str,
    body: bytes,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four signature headers (plus Content-Type) for one request with this exact body."""
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(18)
    return {
        "Content-Type": "application/json",
        "X-Partner-Key": key_id,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Signature": sign(secret, timestamp, nonce, body),
    }


def json_body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def signed_request(client, method: str, path: str, key_id: str, secret: str, payload: Any = None, *,
                   body: bytes | None = None, headers: dict[str, str] | None = None):
    """Send a signed request through a Flask test client; `body` (raw bytes) wins over `payload`."""
    raw = body if body is not None else (b"" if payload is None else json_body(payload))
    all_headers = signed_headers(key_id, secret, raw)
    all_headers.update(headers or {})
    return client.open(path, method=method, data=raw, headers=all_headers)
