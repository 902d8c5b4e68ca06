"""Citizens: creation, lookup, phone, home district and consents (PIPL).

Consent rules: the privacy terms first, at their current version; trajectory (whereabouts)
data needs a separate consent per scenario (PIPL Arts. 28-30); withdrawal is one call and takes
effect at once (Art. 15). A consent is active while `withdrawn_at IS NULL` — the crediting job
reads exactly that from the `consents` table. Every change is audited.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app import crypto
from app.accounts.models import Citizen, Consent
from app.accounts.terms import TERMS_VERSION
from app.audit import service as audit
from app.auth.models import Identity
from app.errors import AppError, not_found
from app.extensions import db
from app.models_base import utcnow
from scenarios.models import Scenario

logger = logging.getLogger(__name__)

PHONE_INDEX_DOMAIN = "phone"


# --- citizens ----------------------------------------------------------------

def active_citizen(citizen_id: int) -> Citizen | None:
    citizen = db.session.get(Citizen, citizen_id)
    return citizen if citizen is not None and citizen.status == "active" else None


def create_citizen() -> Citizen:
    citizen = Citizen(status="active")
    db.session.add(citizen)
    db.session.flush()
    return citizen


def lock_citizen(citizen_id: int) -> Citizen:
    """The citizen's row, locked until the end of the transaction: changes to one citizen's
    identities and consents are serialised, so check-then-write cannot race."""
    citizen = db.session.get(Citizen, citizen_id, with_for_update=True, populate_existing=True)
    if citizen is None or citizen.status != "active":
        raise not_found("account", "账户")
    return citizen


def phone_index(e164: str) -> bytes:
    return crypto.blind_index(PHONE_INDEX_DOMAIN, e164)


def _phone_aad(citizen_id: int) -> str:
    return f"citizen:{citizen_id}:phone"


def set_phone_if_absent(citizen: Citizen, e164: str) -> bool:
    """Keep a provider-verified phone (E.164) unless the citizen has one or another account
    holds it (one verified phone per account; a recycled number must not merge accounts)."""
    if citizen.phone_idx is not None or not e164.startswith("+"):
        return False
    idx = phone_index(e164)
    if db.session.scalar(select(Citizen.id).where(Citizen.phone_idx == idx)) is not None:
        logger.info("phone already held by another account; not stored for citizen %s", citizen.id)
        return False
    try:
        with db.session.begin_nested():  # a concurrent sign-in may take the same phone first
            citizen.phone_idx = idx
            citizen.phone_enc = crypto.encrypt(e164, _phone_aad(citizen.id))
            citizen.key_version = int(current_app.config["DATA_KEY_VERSION"])
            db.session.flush()
    except IntegrityError:
        logger.info("phone taken concurrently by another account; not stored for citizen %s", citizen.id)
        return False
    return True


def masked_phone(citizen: Citizen) -> str | None:
    if citizen.phone_enc is None:
        return None
    return crypto.mask_phone(crypto.decrypt(citizen.phone_enc, _phone_aad(citizen.id)))


def owner_phone(citizen: Citizen) -> str | None:
    """The phone in full (E.164): for its owner only (the data export)."""
    return None if citizen.phone_enc is None else crypto.decrypt(citizen.phone_enc, _phone_aad(citizen.id))


def linked_providers(citizen_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(Identity.provider).where(Identity.citizen_id == citizen_id).order_by(Identity.provider)
        )
    )


def profile(citizen_id: int) -> dict[str, Any]:
    """What the citizen sees about their own account (the phone masked)."""
    citizen = active_citizen(citizen_id)
    if citizen is None:
        raise not_found("account", "账户")
    return {
        "id": citizen.id,
        "home_district": citizen.home_district,
        "created_at": citizen.created_at,
        "phone": masked_phone(citizen),
        "linked_providers": linked_providers(citizen.id),
        "consents_required": consents_required(citizen.id),
    }


def set_home_district(citizen_id: int, district: str | None) -> None:
    """`district` is one of the 16 codes (checked by the schema) or None to clear it."""
    citizen = lock_citizen(citizen_id)
    citizen.home_district = district
    db.session.flush()


# --- consents ----------------------------------------------------------------

def _active(citizen_id: int, kind: str, scenario_code: str | None = None) -> Consent | None:
    query = select(Consent).where(
        Consent.citizen_id == citizen_id, Consent.kind == kind, Consent.withdrawn_at.is_(None)
    )
    if scenario_code is None:
        query = query.where(Consent.scenario_code.is_(None))
    else:
        query = query.where(Consent.scenario_code == scenario_code)
    return db.session.scalars(query.limit(1)).first()


def has_privacy_consent(citizen_id: int) -> bool:
    """An active consent to the privacy terms (any version: a new version asks again, but does
    not stop crediting until the citizen withdraws)."""
    return _active(citizen_id, "privacy") is not None


def has_trajectory_consent(citizen_id: int, scenario_code: str) -> bool:
    """The separate whereabouts consent for one scenario, and the privacy consent under it."""
    return has_privacy_consent(citizen_id) and _active(citizen_id, "trajectory", scenario_code) is not None


def consents_required(citizen_id: int) -> bool:
    """True until the citizen consents to the current version of the privacy terms."""
    consent = _active(citizen_id, "privacy")
    return consent is None or consent.terms_version != TERMS_VERSION


def list_consents(citizen_id: int) -> list[Consent]:
    query = select(Consent).where(Consent.citizen_id == citizen_id)
    return list(db.session.scalars(query.order_by(Consent.granted_at.desc(), Consent.id.desc())))


def grant_privacy_consent(citizen_id: int, terms_version: str) -> tuple[Consent, bool]:
    """Consent to the current privacy terms; returns (consent, created).

    Already active at this version: the existing consent, nothing written. Active at an older
    version: that one is closed and the new one opened in the same transaction, so there is no
    moment without consent.
    """
    if terms_version != TERMS_VERSION:
        raise AppError(
            "terms_version_outdated",
            f"These are not the current privacy terms; read and accept version {TERMS_VERSION}.",
            f"隐私政策已更新，请阅读并同意最新版本（{TERMS_VERSION}）。",
            409,
            details={"current_version": TERMS_VERSION},
        )
    lock_citizen(citizen_id)
    existing = _active(citizen_id, "privacy")
    if existing is not None and existing.terms_version == TERMS_VERSION:
        return existing, False
    superseded = None
    if existing is not None:
        existing.withdrawn_at = utcnow()
        superseded = existing.id
        db.session.flush()
    consent = Consent(citizen_id=citizen_id, kind="privacy", terms_version=TERMS_VERSION)
    db.session.add(consent)
    db.session.flush()
    _audit("consent.granted", citizen_id, consent, superseded=superseded)
    return consent, True


def grant_trajectory_consent(citizen_id: int, scenario_code: str) -> tuple[Consent, bool]:
    """The separate consent to process trips for one scenario; needs the privacy consent first."""
    lock_citizen(citizen_id)
    if not has_privacy_consent(citizen_id):
        raise AppError(
            "privacy_consent_required",
            "Accept the privacy terms before consenting to a scenario.",
            "请先同意隐私政策，再开启该场景的授权。",
            409,
        )
    if db.session.scalar(select(Scenario.id).where(Scenario.code == scenario_code)) is None:
        raise not_found("scenario", "场景")
    existing = _active(citizen_id, "trajectory", scenario_code)
    if existing is not None:
        return existing, False
    consent = Consent(
        citizen_id=citizen_id, kind="trajectory", scenario_code=scenario_code, terms_version=TERMS_VERSION
    )
    db.session.add(consent)
    db.session.flush()
    _audit("consent.granted", citizen_id, consent)
    return consent, True


def withdraw_consent(citizen_id: int, consent_id: int) -> Consent:
    """Withdraw one of the citizen's own consents (another citizen's id is a 404).

    Withdrawing the privacy consent also withdraws every trajectory consent, which rest on it.
    Withdrawing an already withdrawn consent changes nothing.
    """
    lock_citizen(citizen_id)
    consent = db.session.scalars(
        select(Consent).where(Consent.id == consent_id, Consent.citizen_id == citizen_id)
    ).first()
    if consent is None:
        raise not_found("consent", "授权记录")
    if consent.withdrawn_at is not None:
        return consent
    now = utcnow()
    consent.withdrawn_at = now
    db.session.flush()
    _audit("consent.withdrawn", citizen_id, consent)
    if consent.kind == "privacy":
        cascaded = db.session.execute(
            update(Consent)
            .where(Consent.citizen_id == citizen_id, Consent.kind == "trajectory", Consent.withdrawn_at.is_(None))
            .values(withdrawn_at=now)
            .returning(Consent.id, Consent.scenario_code)
        ).all()
        for row in cascaded:
            audit.record(
                "consent.withdrawn",
                actor_type="citizen",
                actor_id=citizen_id,
                object_type="consent",
                object_id=row.id,
                details={"kind": "trajectory", "scenario_code": row.scenario_code, "cascade_from": consent.id},
            )
    return consent


def _audit(action: str, citizen_id: int, consent: Consent, **extra: Any) -> None:
    details: dict[str, Any] = {"kind": consent.kind, "terms_version": consent.terms_version}
    if consent.scenario_code is not None:
        details["scenario_code"] = consent.scenario_code
    details.update({k: v for k, v in extra.items() if v is not None})
    audit.record(
        action, actor_type="citizen", actor_id=citizen_id, object_type="consent", object_id=consent.id, details=details
    )
