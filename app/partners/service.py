"""Partners: the registry, signing secrets, and citizens' account bindings (R4.4).

A partner never learns who a citizen is. The citizen asks us for a one-time binding code and
types it into the partner's app; the partner confirms the code together with its own
pseudonymous account reference, and from then on its events name that reference, which we map
to the citizen. The reference is stored encrypted plus a keyed blind index for lookup.

Services flush, never commit; failures raise AppError.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app import crypto
from app.audit.service import record as audit
from app.errors import AppError
from app.extensions import db
from app.models_base import utcnow
from app.partners.models import PARTNER_KINDS, BindingCode, Partner, PartnerBinding, PartnerSecret

SECRET_OVERLAP = timedelta(hours=24)  # a rotated-out secret keeps working this long
BINDING_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed by hand
BINDING_CODE_LENGTH = 8
ACCOUNT_REF_MAX = 128
PARTNER_CODE = re.compile(r"[a-z][a-z0-9_-]{1,63}")
_CODE_ATTEMPTS = 5


# ---------------------------------------------------------------------------------------------
# Registry and secrets

def partner_by_code(code: str) -> Partner | None:
    return db.session.scalars(select(Partner).where(Partner.code == code)).one_or_none()


def public_partners() -> list[Partner]:
    """Active partners, for the binding screen of the mini-app."""
    return list(db.session.scalars(select(Partner).where(Partner.status == "active").order_by(Partner.code)))


def create_partner(code: str, kind: str, name_zh: str, name_en: str) -> tuple[Partner, str, str]:
    """Register a partner and its first signing secret; returns (partner, key_id, secret)."""
    if not PARTNER_CODE.fullmatch(code):
        raise AppError("invalid_partner_code", "The partner code must be 2-64 characters: a-z, 0-9, _ or -.",
                       "合作方代码须为2-64位小写字母、数字、_或-。", 400)
    if kind not in PARTNER_KINDS:
        raise AppError("invalid_partner_kind", f"The kind must be one of: {', '.join(PARTNER_KINDS)}.",
                       f"合作方类型须为：{'、'.join(PARTNER_KINDS)}。", 400)
    if not name_zh.strip() or not name_en.strip():
        raise AppError("invalid_partner_name", "Both names are required.", "中英文名称均为必填。", 400)
    if partner_by_code(code) is not None:
        raise AppError("partner_exists", "A partner with this code exists.", "该合作方代码已存在。", 409)
    partner = Partner(code=code, kind=kind, name_zh=name_zh.strip(), name_en=name_en.strip(), status="active")
    db.session.add(partner)
    db.session.flush()
    key_id, secret = _issue_secret(partner)
    audit("partner.created", actor_type="system", object_type="partner", object_id=partner.id,
          details={"code": code, "kind": kind, "key_id": key_id})
    return partner, key_id, secret


def rotate_secret(code: str, overlap: timedelta = SECRET_OVERLAP) -> tuple[str, str]:
    """Issue a new secret; the partner's current secrets keep working for `overlap`, then expire."""
    partner = _require_partner(code)
    now = utcnow()
    retire_at = now + overlap
    db.session.execute(
        update(PartnerSecret)
        .where(
            PartnerSecret.partner_id == partner.id,
            (PartnerSecret.expires_at.is_(None)) | (PartnerSecret.expires_at > retire_at),
        )
        .values(expires_at=retire_at)
    )
    key_id, secret = _issue_secret(partner)
    audit("partner.secret_rotated", actor_type="system", object_type="partner", object_id=partner.id,
          details={"key_id": key_id, "previous_expire_at": retire_at.isoformat()})
    return key_id, secret


def set_partner_status(code: str, status: str) -> Partner:
    """Suspend (every signed call answers 403) or reactivate a partner."""
    if status not in ("active", "suspended"):
        raise AppError("invalid_status", "Status must be active or suspended.", "状态须为 active 或 suspended。", 400)
    partner = _require_partner(code)
    partner.status = status
    db.session.flush()
    audit(f"partner.{status}", actor_type="system", object_type="partner", object_id=partner.id,
          details={"code": code})
    return partner


def signing_secret(key_id: str, now: datetime) -> tuple[Partner, str] | None:
    """The partner and plaintext secret for a key id still in force at `now`, or None."""
    row = db.session.execute(
        select(Partner, PartnerSecret.secret_enc)
        .join(PartnerSecret, PartnerSecret.partner_id == Partner.id)
        .where(
            PartnerSecret.key_id == key_id,
            (PartnerSecret.expires_at.is_(None)) | (PartnerSecret.expires_at > now),
        )
    ).one_or_none()
    if row is None:
        return None
    partner, secret_enc = row
    return partner, crypto.decrypt(secret_enc, aad=_secret_aad(key_id))


def _issue_secret(partner: Partner) -> tuple[str, str]:
    key_id = f"pk_{secrets.token_hex(8)}"
    secret = f"sk_{secrets.token_urlsafe(32)}"
    db.session.add(
        PartnerSecret(partner_id=partner.id, key_id=key_id, secret_enc=crypto.encrypt(secret, aad=_secret_aad(key_id)))
    )
    db.session.flush()
    return key_id, secret


def _secret_aad(key_id: str) -> str:
    return f"partner_secret:{key_id}"


def _require_partner(code: str) -> Partner:
    partner = partner_by_code(code)
    if partner is None:
        raise AppError("partner_not_found", "No partner has this code.", "未找到该合作方。", 404)
    return partner


# ---------------------------------------------------------------------------------------------
# Bindings

@dataclass(frozen=True)
class BindingView:
    """What a citizen sees of a binding: never the full account reference."""

    id: int
    partner_code: str
    partner_name_zh: str
    partner_name_en: str
    partner_kind: str
    account_ref_masked: str
    bound_at: datetime


def account_ref_index(partner_id: int, account_ref: str) -> bytes:
    """The keyed blind index that events and bindings are matched on."""
    return crypto.blind_index(f"partner_ref:{partner_id}", account_ref)


def account_ref_indexer(partner_id: int) -> Callable[[str], bytes]:
    """account_ref_index(partner_id, ·) for a whole batch of references, keyed once."""
    return crypto.blind_indexer(f"partner_ref:{partner_id}")


def issue_binding_code(citizen_id: int, partner_code: str) -> tuple[str, datetime]:
    """A fresh one-time code for binding at this partner; earlier unused codes stop working."""
    partner = partner_by_code(partner_code)
    if partner is None or partner.status != "active":
        raise AppError("partner_not_found", "No active partner has this code.", "未找到该合作方。", 404)
    now = utcnow()
    db.session.execute(
        update(BindingCode)
        .where(
            BindingCode.citizen_id == citizen_id,
            BindingCode.partner_id == partner.id,
            BindingCode.used_at.is_(None),
            BindingCode.expires_at > now,
        )
        .values(expires_at=now)
    )
    expires_at = now + timedelta(seconds=current_app.config["BINDING_CODE_TTL"])
    for _ in range(_CODE_ATTEMPTS):  # ~8.5e11 codes; a clash with a stored hash is rare but possible
        code = "".join(secrets.choice(BINDING_ALPHABET) for _ in range(BINDING_CODE_LENGTH))
        row = BindingCode(citizen_id=citizen_id, partner_id=partner.id, code_hash=_code_hash(partner.id, code),
                          created_at=now, expires_at=expires_at)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:
            continue
        return code, expires_at
    raise AppError("binding_code_unavailable", "Please try again.", "请重试。", 503)


def confirm_binding(partner: Partner, code: str, account_ref: str) -> PartnerBinding:
    """The partner confirms a citizen's code with its own account reference; replaces an older binding."""
    now = utcnow()
    code = "".join(code.split()).replace("-", "").upper()  # typed by hand: "abcd efgh" is ABCDEFGH
    row = db.session.scalars(
        select(BindingCode)
        .where(BindingCode.partner_id == partner.id, BindingCode.code_hash == _code_hash(partner.id, code))
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise AppError("invalid_binding_code", "This binding code is not valid for this partner.",
                       "该绑定码无效。", 404)
    if row.used_at is not None or row.expires_at <= now:
        raise AppError("invalid_binding_code", "This binding code was used or has expired.",
                       "该绑定码已使用或已过期。", 400)
    row.used_at = now
    ref_idx = account_ref_index(partner.id, account_ref)
    holder = _active_binding_by_ref(partner.id, ref_idx)
    if holder is not None and holder.citizen_id != row.citizen_id:
        raise _ref_taken()
    current = _active_binding_of_citizen(partner.id, row.citizen_id)
    if current is not None and current.account_ref_idx == ref_idx:
        db.session.flush()
        return current  # already bound to exactly this reference: nothing changes
    if current is not None:
        current.unbound_at = now
        db.session.flush()
        _audit_unbind(current, partner, by="replaced")
    binding = PartnerBinding(
        partner_id=partner.id,
        citizen_id=row.citizen_id,
        account_ref_idx=ref_idx,
        account_ref_enc=crypto.encrypt(account_ref, aad=_ref_aad(partner.id, row.citizen_id)),
        bound_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(binding)
    except IntegrityError:  # a concurrent confirm bound the same reference first
        raise _ref_taken()
    audit("partner_binding.bound", actor_type="partner", actor_id=partner.id, object_type="partner_binding",
          object_id=binding.id, details={"partner": partner.code, "citizen_id": row.citizen_id})
    return binding


def citizen_bindings(citizen_id: int) -> list[BindingView]:
    rows = db.session.execute(
        select(PartnerBinding, Partner)
        .join(Partner, Partner.id == PartnerBinding.partner_id)
        .where(PartnerBinding.citizen_id == citizen_id, PartnerBinding.unbound_at.is_(None))
        .order_by(PartnerBinding.bound_at.desc(), PartnerBinding.id.desc())
    ).all()
    return [
        BindingView(
            id=binding.id,
            partner_code=partner.code,
            partner_name_zh=partner.name_zh,
            partner_name_en=partner.name_en,
            partner_kind=partner.kind,
            account_ref_masked=mask_ref(
                crypto.decrypt(binding.account_ref_enc, aad=_ref_aad(binding.partner_id, binding.citizen_id))
            ),
            bound_at=binding.bound_at,
        )
        for binding, partner in rows
    ]


def unbind_for_citizen(citizen_id: int, binding_id: int) -> None:
    """The citizen ends a binding; someone else's binding is simply not found (BOLA)."""
    binding = db.session.scalars(
        select(PartnerBinding)
        .where(PartnerBinding.id == binding_id, PartnerBinding.citizen_id == citizen_id,
               PartnerBinding.unbound_at.is_(None))
        .with_for_update()
    ).one_or_none()
    if binding is None:
        raise AppError("binding_not_found", "No such binding.", "未找到该绑定。", 404)
    binding.unbound_at = utcnow()
    db.session.flush()
    partner = db.session.get(Partner, binding.partner_id)
    assert partner is not None
    _audit_unbind(binding, partner, by="citizen")


def unbind_for_partner(partner: Partner, account_ref: str) -> None:
    """The partner ends the binding of one of its account references (e.g. the card was cancelled)."""
    binding = _active_binding_by_ref(partner.id, account_ref_index(partner.id, account_ref), lock=True)
    if binding is None:
        raise AppError("binding_not_found", "No active binding has this account reference.",
                       "该账户标识没有有效绑定。", 404)
    binding.unbound_at = utcnow()
    db.session.flush()
    _audit_unbind(binding, partner, by="partner")


def mask_ref(account_ref: str) -> str:
    """Only the last 4 characters of a reference are ever shown (none if it is that short)."""
    return "****" + (account_ref[-4:] if len(account_ref) > 6 else "")


def _code_hash(partner_id: int, code: str) -> bytes:
    # Keyed, so the ~40-bit code space cannot be brute-forced from a leaked table.
    return crypto.blind_index(f"binding_code:{partner_id}", code)


def _ref_aad(partner_id: int, citizen_id: int) -> str:
    return f"partner_ref:{partner_id}:{citizen_id}"


def _active_binding_by_ref(partner_id: int, ref_idx: bytes, lock: bool = False) -> PartnerBinding | None:
    query = select(PartnerBinding).where(
        PartnerBinding.partner_id == partner_id,
        PartnerBinding.account_ref_idx == ref_idx,
        PartnerBinding.unbound_at.is_(None),
    )
    return db.session.scalars(query.with_for_update() if lock else query).one_or_none()


def _active_binding_of_citizen(partner_id: int, citizen_id: int) -> PartnerBinding | None:
    return db.session.scalars(
        select(PartnerBinding)
        .where(PartnerBinding.partner_id == partner_id, PartnerBinding.citizen_id == citizen_id,
               PartnerBinding.unbound_at.is_(None))
        .with_for_update()
    ).one_or_none()


def _audit_unbind(binding: PartnerBinding, partner: Partner, by: str) -> None:
    audit("partner_binding.unbound", actor_type="citizen" if by == "citizen" else "partner",
          actor_id=binding.citizen_id if by == "citizen" else partner.id, object_type="partner_binding",
          object_id=binding.id, details={"partner": partner.code, "citizen_id": binding.citizen_id, "by": by})


def _ref_taken() -> AppError:
    return AppError("account_ref_taken", "This account reference is bound to another citizen.",
                    "该账户标识已绑定其他用户。", 409)
