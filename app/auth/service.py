"""Sign-in, refresh-token rotation and linking of identity providers.

A provider turns a one-time login code into a `ProviderIdentity`; we find the citizen behind it
by a keyed blind index of the provider's subject, or make a new citizen. The subject itself is
kept only encrypted, bound to its row. Refresh tokens are opaque, stored hashed, and rotate on
every use; presenting a used one again means it leaked, so its whole family is revoked.

Nothing here logs a code, token, openid, session key or phone.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app import crypto
from app.accounts import service as accounts
from app.accounts.models import Citizen
from app.audit import service as audit
from app.auth.models import Identity, RefreshToken
from app.auth.providers import (
    AlipayClient,
    IdentityProvider,
    ProviderIdentity,
    SuishenbanClient,
    WeChatClient,
    provider_unavailable,
)
from app.auth.tokens import issue_access_token, new_family, new_refresh_secret
from app.errors import AppError, not_found
from app.extensions import db
from app.models_base import utcnow

PROVIDERS = ("wechat", "alipay", "suishenban")


# --- errors --------------------------------------------------------------------

def invalid_refresh_token() -> AppError:
    return AppError(
        "invalid_refresh_token", "The refresh token is invalid or expired.", "刷新令牌无效或已过期，请重新登录。", 401
    )


def refresh_token_reused() -> AppError:
    return AppError(
        "refresh_token_reused",
        "This refresh token was already used; every session from it has been signed out.",
        "该刷新令牌已被使用过，相关登录已全部失效，请重新登录。",
        401,
    )


def account_closed() -> AppError:
    return AppError("account_closed", "This account is closed.", "该账户已注销。", 403)


# --- provider clients ----------------------------------------------------------

def provider_client(provider: str) -> IdentityProvider:
    """The configured client for a provider, built once per app (keys parsed once)."""
    if provider not in PROVIDERS:
        raise not_found("sign-in provider", "登录方式")
    cache: dict[str, IdentityProvider] = current_app.extensions.setdefault("identity_providers", {})
    client = cache.get(provider)
    if client is None:
        client = cache[provider] = _build_client(provider)
    return client


def _build_client(provider: str) -> IdentityProvider:
    config = current_app.config
    timeout = float(config["PROVIDER_TIMEOUT"])
    if provider == "wechat":
        return WeChatClient(config["WECHAT_BASE_URL"], config["WECHAT_APPID"], config["WECHAT_SECRET"], timeout)
    if provider == "alipay":
        if not config.get("ALIPAY_PRIVATE_KEY"):
            current_app.logger.error("alipay: ALIPAY_PRIVATE_KEY is not configured")
            raise provider_unavailable()
        return AlipayClient(
            config["ALIPAY_BASE_URL"],
            config["ALIPAY_APP_ID"],
            config["ALIPAY_PRIVATE_KEY"],
            timeout,
            alipay_public_key_pem=config.get("ALIPAY_PUBLIC_KEY"),
        )
    return _suishenban_client()


def _suishenban_client() -> SuishenbanClient:
    config = current_app.config
    return SuishenbanClient(
        config["SUISHENBAN_BASE_URL"],
        config["SUISHENBAN_CLIENT_ID"],
        config["SUISHENBAN_CLIENT_SECRET"],
        config["SUISHENBAN_REDIRECT_URI"],
        float(config["PROVIDER_TIMEOUT"]),
    )


def suishenban_authorize_url(state: str) -> str:
    client = provider_client("suishenban")
    assert isinstance(client, SuishenbanClient)
    return client.authorize_url(state)


# --- identities ----------------------------------------------------------------

def _subject_index(provider: str, subject: str) -> bytes:
    return crypto.blind_index(f"identity:{provider}", subject)


def _subject_aad(identity_id: int) -> str:
    return f"identity:{identity_id}:subject"


def find_identity(who: ProviderIdentity) -> Identity | None:
    return db.session.scalars(
        select(Identity).where(
            Identity.provider == who.provider, Identity.subject_idx == _subject_index(who.provider, who.subject)
        )
    ).first()


def _insert_identity(citizen_id: int, who: ProviderIdentity) -> Identity:
    """Insert the identity row, then seal the subject with the row's own id as AAD."""
    identity = Identity(
        citizen_id=citizen_id,
        provider=who.provider,
        subject_idx=_subject_index(who.provider, who.subject),
        unionid_idx=crypto.blind_index(f"identity:{who.provider}:unionid", who.unionid) if who.unionid else None,
        last_login_at=utcnow(),
    )
    db.session.add(identity)
    db.session.flush()
    identity.subject_enc = crypto.encrypt(who.subject, _subject_aad(identity.id))
    db.session.flush()
    return identity


def _citizen_for(who: ProviderIdentity) -> tuple[Citizen, bool]:
    """(citizen, created). Race-safe: concurrent first logins of one subject make one citizen.

    The new citizen and identity are written inside a SAVEPOINT; a concurrent twin waits on the
    unique index (provider, subject_idx), fails when the first commits, rolls back only its
    savepoint and reads the winner's row (READ COMMITTED: the next statement sees it).
    """
    identity = find_identity(who)
    if identity is None:
        try:
            with db.session.begin_nested():
                citizen = accounts.create_citizen()
                identity = _insert_identity(citizen.id, who)
        except IntegrityError:
            identity = find_identity(who)
            if identity is None:  # pragma: no cover - the unique index said it exists
                raise
        else:
            if who.phone:
                accounts.set_phone_if_absent(citizen, who.phone)
            return citizen, True
    citizen = accounts.active_citizen(identity.citizen_id)
    if citizen is None:
        raise account_closed()
    identity.last_login_at = utcnow()
    if who.phone:
        accounts.set_phone_if_absent(citizen, who.phone)
    db.session.flush()
    return citizen, False


def attach_identity(citizen_id: int, who: ProviderIdentity) -> Identity:
    """Link a provider identity known to belong to this citizen (demo data, imports); no code exchange."""
    return _insert_identity(citizen_id, who)


def citizen_for_identity(who: ProviderIdentity) -> Citizen:
    """The citizen signed in by this provider identity, created on first use (demo data, imports)."""
    return _citizen_for(who)[0]


# --- sign-in -------------------------------------------------------------------

@dataclass(frozen=True)
class SignedIn:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    citizen: dict[str, Any]
    token_type: str = "Bearer"


def sign_in(provider: str, code: str) -> SignedIn:
    """Exchange a provider login code for our tokens, creating the citizen on first sign-in.

    A refused sign-in is audited (provider and error code only) before the error propagates;
    the route keeps that audit row although the answer is an error.
    """
    try:
        who = provider_client(provider).exchange(code)
        citizen, created = _citizen_for(who)
    except AppError as err:
        audit.record("auth.login_failed", actor_type="anonymous", details={"provider": provider, "code": err.code})
        raise
    signed_in = _issue(citizen, new_family())
    # Last: the audit chain's lock is held until commit, so take it as late as possible.
    audit.record(
        "auth.login",
        actor_type="citizen",
        actor_id=citizen.id,
        object_type="citizen",
        object_id=citizen.id,
        details={"provider": provider, "new_citizen": created},
    )
    return signed_in


def citizen_summary(citizen: Citizen) -> dict[str, Any]:
    return {
        "id": citizen.id,
        "home_district": citizen.home_district,
        "consents_required": accounts.consents_required(citizen.id),
        "linked_providers": accounts.linked_providers(citizen.id),
    }


def _issue(citizen: Citizen, family_id: uuid.UUID) -> SignedIn:
    access_token, expires_in = issue_access_token(f"citizen:{citizen.id}")
    refresh_token = new_refresh_secret()
    refresh_ttl = int(current_app.config["REFRESH_TOKEN_TTL"])
    db.session.add(
        RefreshToken(
            citizen_id=citizen.id,
            family_id=family_id,
            token_hash=crypto.token_hash(refresh_token),
            expires_at=utcnow() + timedelta(seconds=refresh_ttl),
        )
    )
    db.session.flush()
    return SignedIn(access_token, expires_in, refresh_token, refresh_ttl, citizen_summary(citizen))


# --- refresh and logout ----------------------------------------------------------

def refresh(refresh_token: str) -> SignedIn:
    """Rotate: mark the presented token used and issue its successor in the same family.

    The conditional UPDATE ... WHERE used_at IS NULL is the race guard: of two requests with
    one token, exactly one gets the row back; the other sees a used token, which is what a
    stolen-and-replayed token looks like, and revokes the family. The caller must keep that
    revocation although the answer is a 401.
    """
    token_hash = crypto.token_hash(refresh_token)
    now = utcnow()
    claimed = db.session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.citizen_id, RefreshToken.family_id)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        raise _refused_refresh(token_hash)
    citizen = accounts.active_citizen(claimed.citizen_id)
    if citizen is None:
        revoke_family(claimed.family_id)
        raise invalid_refresh_token()
    return _issue(citizen, claimed.family_id)


def _refused_refresh(token_hash: bytes) -> AppError:
    row = db.session.execute(
        select(RefreshToken.citizen_id, RefreshToken.family_id, RefreshToken.used_at).where(
            RefreshToken.token_hash == token_hash
        )
    ).first()
    if row is None or row.used_at is None:  # unknown, expired or revoked (logged out)
        return invalid_refresh_token()
    revoked = revoke_family(row.family_id)
    audit.record(
        "auth.refresh_reused",
        actor_type="citizen",
        actor_id=row.citizen_id,
        object_type="token_family",
        object_id=str(row.family_id),
        details={"revoked": revoked},
    )
    return refresh_token_reused()


def revoke_family(family_id: uuid.UUID) -> int:
    """Revoke every live token of a family; returns how many were revoked."""
    result = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


def logout(refresh_token: str) -> None:
    """Revoke the token's family (this device's session). An unknown token changes nothing."""
    row = db.session.execute(
        select(RefreshToken.citizen_id, RefreshToken.family_id).where(
            RefreshToken.token_hash == crypto.token_hash(refresh_token)
        )
    ).first()
    if row is None:
        return
    revoke_family(row.family_id)
    audit.record(
        "auth.logout",
        actor_type="citizen",
        actor_id=row.citizen_id,
        object_type="token_family",
        object_id=str(row.family_id),
    )


# --- linking -----------------------------------------------------------------------

def list_identities(citizen_id: int) -> list[Identity]:
    """The citizen's linked providers (subjects are never shown)."""
    return list(
        db.session.scalars(select(Identity).where(Identity.citizen_id == citizen_id).order_by(Identity.created_at))
    )


def link_identity(citizen_id: int, provider: str, code: str) -> Identity:
    """Link another provider account to the signed-in citizen."""
    who = provider_client(provider).exchange(code)
    citizen = accounts.lock_citizen(citizen_id)
    existing = find_identity(who)
    if existing is not None and existing.citizen_id != citizen_id:
        raise _identity_already_linked()
    if existing is not None or _identity_of(citizen_id, provider) is not None:
        raise AppError(
            "provider_already_linked",
            "This account already has a sign-in of that provider; unlink it first.",
            "该账户已绑定此登录方式，请先解绑。",
            409,
        )
    try:
        with db.session.begin_nested():
            identity = _insert_identity(citizen_id, who)
    except IntegrityError:  # the same provider account was linked elsewhere a moment ago
        raise _identity_already_linked() from None
    if who.phone:
        accounts.set_phone_if_absent(citizen, who.phone)
    audit.record(
        "auth.identity_linked",
        actor_type="citizen",
        actor_id=citizen_id,
        object_type="identity",
        object_id=identity.id,
        details={"provider": provider},
    )
    return identity


def unlink_identity(citizen_id: int, provider: str) -> None:
    """Unlink a provider, unless it is the citizen's last way to sign in."""
    if provider not in PROVIDERS:
        raise not_found("sign-in provider", "登录方式")
    accounts.lock_citizen(citizen_id)
    identity = _identity_of(citizen_id, provider)
    if identity is None:
        raise not_found("linked sign-in", "已绑定的登录方式")
    if len(list_identities(citizen_id)) <= 1:
        raise AppError(
            "last_identity",
            "This is your only way to sign in; link another provider before unlinking it.",
            "这是你唯一的登录方式，请先绑定其他登录方式再解绑。",
            409,
        )
    identity_id = identity.id
    db.session.delete(identity)
    db.session.flush()
    audit.record(
        "auth.identity_unlinked",
        actor_type="citizen",
        actor_id=citizen_id,
        object_type="identity",
        object_id=identity_id,
        details={"provider": provider},
    )


def _identity_of(citizen_id: int, provider: str) -> Identity | None:
    return db.session.scalars(
        select(Identity).where(Identity.citizen_id == citizen_id, Identity.provider == provider)
    ).first()


def _identity_already_linked() -> AppError:
    return AppError(
        "identity_already_linked",
        "That provider account already belongs to another citizen account.",
        "该第三方账号已绑定到其他账户。",
        409,
    )
