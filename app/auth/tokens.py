"""Our own JWT access tokens and the signing keys behind them.

The algorithm is pinned beside each key in `signing_keys`, never read from the token header;
`kid` is looked up in that table; `exp`, `iat`, `iss`, `aud` and `sub` are required; `jku`,
`jwk` and `x5u` headers are ignored. `jwt.decode(` appears only in this module.

Keys rotate without signing anyone out: `rotate_signing_key()` makes a new key that signs from
then on while the old one keeps verifying the tokens it signed (≤ 15 minutes' worth) until
`retire_signing_key(kid)`.
"""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from sqlalchemy import select, text

from app import crypto
from app.audit import service as audit
from app.auth.models import SigningKey
from app.errors import AppError
from app.extensions import db
from app.models_base import utcnow

ALGORITHM = "ES256"
_KID_MAX = 64
_KEY_CREATION_LOCK = 0x6A776B6579  # pg advisory lock id: "jwkey"


@dataclass(frozen=True)
class AccessClaims:
    subject: str  # "citizen:42"
    role: str
    kid: str

    @property
    def citizen_id(self) -> int | None:
        kind, _, ident = self.subject.partition(":")
        return int(ident) if kind == "citizen" and ident.isdigit() else None


def invalid_token(reason: str = "The access token is invalid or expired.") -> AppError:
    return AppError("invalid_token", reason, "访问令牌无效或已过期，请重新登录。", 401)


def _key_aad(kid: str) -> str:
    return f"signing_key:{kid}"


def create_signing_key() -> SigningKey:
    """Create a new ES256 key; its private half is stored encrypted with the data key."""
    private = ec.generate_private_key(ec.SECP256R1())
    kid = "k" + secrets.token_hex(8)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    key = SigningKey(kid=kid, algorithm=ALGORITHM, public_pem=public, private_enc=crypto.encrypt(pem, _key_aad(kid)))
    db.session.add(key)
    db.session.flush()
    return key


def _newest_unretired_key() -> SigningKey | None:
    return db.session.scalars(
        select(SigningKey)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid.desc())
        .limit(1)
    ).first()


def active_signing_key() -> SigningKey:
    """The newest unretired key, created on first use.

    Creation takes a transaction-scoped advisory lock and looks again, so a burst of first
    sign-ins on an empty table makes one key, not one per request.
    """
    key = _newest_unretired_key()
    if key is not None:
        return key
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _KEY_CREATION_LOCK})
    return _newest_unretired_key() or create_signing_key()


def rotate_signing_key() -> SigningKey:
    """Start signing with a new key; older keys keep verifying until they are retired."""
    key = create_signing_key()
    audit.record("auth.signing_key_created", actor_type="system", object_type="signing_key", object_id=key.kid)
    return key


def retire_signing_key(kid: str) -> bool:
    """Stop accepting tokens signed by `kid` (at once: its tokens become 401). False if unknown."""
    key = db.session.get(SigningKey, kid, with_for_update=True)
    if key is None:
        return False
    if key.retired_at is None:
        key.retired_at = utcnow()
        db.session.flush()
        audit.record("auth.signing_key_retired", actor_type="system", object_type="signing_key", object_id=kid)
    return True


def encode_with_key(key: SigningKey, claims: dict[str, Any]) -> str:
    """Sign `claims` with one of our keys, with its pinned algorithm and its kid in the header."""
    private = crypto.decrypt(key.private_enc, _key_aad(key.kid))
    return jwt.encode(claims, private, algorithm=key.algorithm, headers={"kid": key.kid})


def issue_access_token(subject: str, role: str = "citizen") -> tuple[str, int]:
    """Return (token, expires_in seconds)."""
    key = active_signing_key()
    now = utcnow()
    ttl = int(current_app.config["ACCESS_TOKEN_TTL"])
    claims = {
        "iss": current_app.config["JWT_ISSUER"],
        "aud": current_app.config["JWT_AUDIENCE"],
        "sub": subject,
        "role": role,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": secrets.token_urlsafe(12),
    }
    return encode_with_key(key, claims), ttl


def verify_access_token(token: str) -> AccessClaims:
    """Verify signature and claims; every failure is the same 401 to the client."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise invalid_token() from None
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > _KID_MAX or not kid.isascii() or not kid.isalnum():
        raise invalid_token()
    key = db.session.get(SigningKey, kid)
    if key is None or key.retired_at is not None:
        raise invalid_token()
    try:
        claims = jwt.decode(
            token,
            key.public_pem,
            algorithms=[key.algorithm],
            audience=current_app.config["JWT_AUDIENCE"],
            issuer=current_app.config["JWT_ISSUER"],
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError:
        raise invalid_token() from None
    sub, role = claims.get("sub"), claims.get("role", "citizen")
    if not isinstance(sub, str) or not isinstance(role, str):
        raise invalid_token()
    return AccessClaims(subject=sub, role=role, kid=kid)


def new_refresh_secret() -> str:
    return secrets.token_urlsafe(32)


def new_family() -> uuid.UUID:
    return uuid.uuid4()
