"""Merchants, stores and merchant staff: onboarding by operators, staff managed by merchant admins.

Merchant staff are citizens: they sign in to the mini-app as themselves and switch to "merchant
mode" with POST /merchant/session, which answers only for a citizen bound as active staff. Binding
goes through a one-time invitation code (10 minutes, only its keyed hash stored) issued by an
operator or by the merchant's admin and redeemed by the citizen.

Every lookup on the merchant side is scoped by the caller's own merchant: another merchant's staff
or store is simply "not found" (BOLA). Services flush, never commit; failures raise AppError.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import crypto
from app.accounts.districts import DISTRICT_CODES
from app.accounts.models import Citizen
from app.audit.service import record as audit
from app.auth.guard import Actor
from app.auth.tokens import issue_access_token
from app.errors import AppError
from app.extensions import db
from app.models_base import utcnow
from app.pagination import decode_cursor, page
from rewards.merchants.models import (
    MERCHANT_ROLES,
    MERCHANT_STATUSES,
    Merchant,
    MerchantStaff,
    MerchantStaffStore,
    StaffInvitation,
    Store,
)

INVITATION_TTL = timedelta(minutes=10)
INVITATION_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed by hand
INVITATION_CODE_LENGTH = 10
_CODE_ATTEMPTS = 5
STORE_STATUSES = ("active", "closed")


# ---------------------------------------------------------------------------------------------
# Hooks other packages call (role_required, coupons, redemption)

def merchant_staff_may_act(staff_id: int, role: str | None = None) -> bool:
    """SUBJECT_CHECKS hook: active staff of an active merchant, whose citizen account is open, acting
    with the role they have now: `role` is the token's, so a demoted merchant admin's older token stops
    working. None (no token yet, e.g. starting a merchant session) checks the standing alone."""
    current = db.session.scalar(
        select(MerchantStaff.role)
        .join(Merchant, Merchant.id == MerchantStaff.merchant_id)
        .join(Citizen, Citizen.id == MerchantStaff.citizen_id)
        .where(MerchantStaff.id == staff_id, MerchantStaff.status == "active", Merchant.status == "active",
               Citizen.status == "active")
    )
    return current is not None and (role is None or current == role)


def staff_store_ids(staff_id: int) -> set[int]:
    """The open stores this staff member may act at (empty for unknown or removed staff)."""
    return set(
        db.session.scalars(
            select(MerchantStaffStore.store_id)
            .join(Store, Store.id == MerchantStaffStore.store_id)
            .join(MerchantStaff, MerchantStaff.id == MerchantStaffStore.staff_id)
            .where(MerchantStaffStore.staff_id == staff_id, Store.status == "active",
                   MerchantStaff.status == "active", Store.merchant_id == MerchantStaff.merchant_id)
        )
    )


def merchant_of_staff(staff_id: int) -> int:
    """The merchant id a staff member belongs to (404 `merchant_staff_not_found` if unknown)."""
    merchant_id = db.session.scalar(select(MerchantStaff.merchant_id).where(MerchantStaff.id == staff_id))
    if merchant_id is None:
        raise _staff_not_found()
    return merchant_id


def merchant_account_code(merchant_id: int) -> str:
    """The merchant's ledger account (kind "merchant", created by the ledger on first use)."""
    return f"merchant:{merchant_id}"


def store_of_merchant(merchant_id: int, store_id: int) -> Store:
    """One of the merchant's stores; another merchant's store is not found (BOLA)."""
    store = db.session.scalars(
        select(Store).where(Store.id == store_id, Store.merchant_id == merchant_id)
    ).one_or_none()
    if store is None:
        raise AppError("store_not_found", "No such store.", "未找到该门店。", 404)
    return store


# ---------------------------------------------------------------------------------------------
# Merchants and stores (operators)

def _actor_audit(actor: Actor | None) -> dict[str, Any]:
    if actor is None:
        return {"actor_type": "system", "actor_id": None}
    return {"actor_type": actor.kind, "actor_id": actor.id}


def _check_names(name_zh: str, name_en: str) -> tuple[str, str]:
    if not name_zh.strip() or not name_en.strip():
        raise AppError("invalid_merchant_name", "Both names are required.", "中英文名称均为必填。", 400)
    return name_zh.strip(), name_en.strip()


def create_merchant(actor: Actor | None, name_zh: str, name_en: str) -> Merchant:
    """Onboard a merchant (an operator, or None for the CLI/demo)."""
    name_zh, name_en = _check_names(name_zh, name_en)
    merchant = Merchant(name_zh=name_zh, name_en=name_en, status="active",
                        created_by_staff_id=actor.id if actor and actor.kind == "staff" else None)
    db.session.add(merchant)
    db.session.flush()
    audit("merchant.created", object_type="merchant", object_id=merchant.id, **_actor_audit(actor))
    return merchant


def get_merchant(merchant_id: int) -> Merchant:
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise AppError("merchant_not_found", "No such merchant.", "未找到该商户。", 404)
    return merchant


def list_merchants(cursor: str | None, limit: int, status: str | None = None) -> dict[str, Any]:
    query = select(Merchant).order_by(Merchant.id).limit(limit + 1)
    after = _id_cursor(cursor)
    if after is not None:
        query = query.where(Merchant.id > after)
    if status is not None:
        query = query.where(Merchant.status == status)
    return page(list(db.session.scalars(query)), limit, key=lambda merchant: [merchant.id])


def update_merchant(actor: Actor, merchant_id: int, changes: dict[str, Any]) -> Merchant:
    """Rename, suspend (its staff are refused at once) or reactivate a merchant."""
    merchant = db.session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise AppError("merchant_not_found", "No such merchant.", "未找到该商户。", 404)
    done: dict[str, Any] = {}
    status = changes.get("status")
    if status is not None:
        if status not in MERCHANT_STATUSES:
            raise AppError("invalid_status", "Status must be active or suspended.",
                           "状态须为 active 或 suspended。", 400)
        if status != merchant.status:
            done["status"] = [merchant.status, status]
            merchant.status = status
    if changes.get("name_zh") is not None or changes.get("name_en") is not None:
        name_zh, name_en = _check_names(changes.get("name_zh") or merchant.name_zh,
                                        changes.get("name_en") or merchant.name_en)
        if (name_zh, name_en) != (merchant.name_zh, merchant.name_en):
            merchant.name_zh, merchant.name_en = name_zh, name_en
            done["names"] = True
    if done:
        db.session.flush()
        audit("merchant.updated", object_type="merchant", object_id=merchant.id, details=done,
              **_actor_audit(actor))
    return merchant


def _check_district(district: str) -> None:
    if district not in DISTRICT_CODES:
        raise AppError("invalid_district", "The district must be one of Shanghai's 16 districts.",
                       "区须为上海市16个区之一。", 400)


def create_store(actor: Actor | None, merchant_id: int, name: str, district: str, address: str) -> Store:
    get_merchant(merchant_id)
    _check_district(district)
    if not name.strip() or not address.strip():
        raise AppError("invalid_store", "The store's name and address are required.", "门店名称和地址为必填。", 400)
    store = Store(merchant_id=merchant_id, name=name.strip(), district=district, address=address.strip(),
                  status="active")
    db.session.add(store)
    db.session.flush()
    audit("merchant.store_created", object_type="store", object_id=store.id,
          details={"merchant_id": merchant_id, "district": district}, **_actor_audit(actor))
    return store


def list_stores(merchant_id: int) -> list[Store]:
    get_merchant(merchant_id)
    return list(db.session.scalars(select(Store).where(Store.merchant_id == merchant_id).order_by(Store.id)))


def update_store(actor: Actor, merchant_id: int, store_id: int, changes: dict[str, Any]) -> Store:
    """Rename, move or close a store (staff can no longer act at a closed store)."""
    store = store_of_merchant(merchant_id, store_id)
    done: dict[str, Any] = {}
    if changes.get("status") is not None and changes["status"] != store.status:
        if changes["status"] not in STORE_STATUSES:
            raise AppError("invalid_status", "Status must be active or closed.", "状态须为 active 或 closed。", 400)
        done["status"] = [store.status, changes["status"]]
        store.status = changes["status"]
    if changes.get("district") is not None and changes["district"] != store.district:
        _check_district(changes["district"])
        done["district"] = [store.district, changes["district"]]
        store.district = changes["district"]
    for field in ("name", "address"):
        value = changes.get(field)
        if value is not None:
            if not value.strip():
                raise AppError("invalid_store", "The store's name and address are required.",
                               "门店名称和地址为必填。", 400)
            if value.strip() != getattr(store, field):
                setattr(store, field, value.strip())
                done[field] = True
    if done:
        db.session.flush()
        audit("merchant.store_updated", object_type="store", object_id=store.id,
              details={"merchant_id": merchant_id, **done}, **_actor_audit(actor))
    return store


# ---------------------------------------------------------------------------------------------
# Merchant staff

@dataclass(frozen=True)
class StaffView:
    """A merchant staff member as their merchant sees them: no personal data."""

    id: int
    merchant_id: int
    role: str
    label: str | None
    status: str
    store_ids: list[int]
    created_at: datetime
    removed_at: datetime | None


def _views(rows: Sequence[MerchantStaff]) -> list[StaffView]:
    ids = [row.id for row in rows]
    stores: dict[int, list[int]] = {staff_id: [] for staff_id in ids}
    if ids:
        for staff_id, store_id in db.session.execute(
            select(MerchantStaffStore.staff_id, MerchantStaffStore.store_id)
            .where(MerchantStaffStore.staff_id.in_(ids))
            .order_by(MerchantStaffStore.store_id)
        ):
            stores[staff_id].append(store_id)
    return [
        StaffView(id=row.id, merchant_id=row.merchant_id, role=row.role, label=row.label, status=row.status,
                  store_ids=stores[row.id], created_at=row.created_at, removed_at=row.removed_at)
        for row in rows
    ]


def staff_view(staff_id: int) -> StaffView:
    row = db.session.get(MerchantStaff, staff_id)
    if row is None:
        raise _staff_not_found()
    return _views([row])[0]


def list_merchant_staff(merchant_id: int, cursor: str | None, limit: int,
                        status: str | None = "active") -> dict[str, Any]:
    query = (select(MerchantStaff).where(MerchantStaff.merchant_id == merchant_id)
             .order_by(MerchantStaff.id).limit(limit + 1))
    after = _id_cursor(cursor)
    if after is not None:
        query = query.where(MerchantStaff.id > after)
    if status is not None:
        query = query.where(MerchantStaff.status == status)
    rows = list(db.session.scalars(query))
    result = page(rows, limit, key=lambda row: [row.id])
    result["items"] = _views(result["items"])
    return result


def _staff_not_found() -> AppError:
    return AppError("merchant_staff_not_found", "No such staff member.", "未找到该店员。", 404)


def _check_role(role: str) -> None:
    if role not in MERCHANT_ROLES:
        raise AppError("invalid_role", "The role must be merchant_staff or merchant_admin.",
                       "角色须为 merchant_staff 或 merchant_admin。", 400)


def _check_stores(merchant_id: int, store_ids: Iterable[int], role: str) -> list[int]:
    """Distinct open stores of this merchant; staff need at least one (an admin may have none)."""
    wanted = sorted(set(store_ids))
    if role == "merchant_staff" and not wanted:
        raise AppError("store_required", "Staff need at least one store.", "店员至少需要一家门店。", 400)
    if wanted:
        found = set(db.session.scalars(
            select(Store.id).where(Store.id.in_(wanted), Store.merchant_id == merchant_id, Store.status == "active")
        ))
        if found != set(wanted):
            raise AppError("store_not_found", "A store is not one of this merchant's open stores.",
                           "门店不属于该商户或已关闭。", 404)
    return wanted


def issue_invitation(actor: Actor, merchant_id: int, role: str, store_ids: Sequence[int],
                     label: str | None = None) -> tuple[str, datetime]:
    """A one-time code that binds whoever redeems it as this merchant's staff; returns (code, expires_at).

    The caller has already been scoped: an operator names any merchant, a merchant admin only its own.
    """
    merchant = get_merchant(merchant_id)
    if merchant.status != "active":
        raise _merchant_not_active()
    _check_role(role)
    wanted = _check_stores(merchant_id, store_ids, role)
    now = utcnow()
    expires_at = now + timedelta(seconds=int(current_app.config.get("STAFF_INVITATION_TTL",
                                                                    INVITATION_TTL.total_seconds())))
    for _ in range(_CODE_ATTEMPTS):  # ~8e14 codes: a clash with a stored hash is rare but possible
        code = "".join(secrets.choice(INVITATION_ALPHABET) for _ in range(INVITATION_CODE_LENGTH))
        row = StaffInvitation(merchant_id=merchant_id, role=role, store_ids=wanted, label=_clean_label(label),
                              code_hash=_code_hash(code), created_by=actor.subject, created_at=now,
                              expires_at=expires_at)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:
            continue
        audit("merchant.staff_invited", object_type="staff_invitation", object_id=row.id,
              details={"merchant_id": merchant_id, "role": role, "store_ids": wanted}, **_actor_audit(actor))
        return code, expires_at
    raise AppError("invitation_unavailable", "Please try again.", "请重试。", 503)


def accept_invitation(citizen_id: int, code: str) -> StaffView:
    """The signed-in citizen redeems an invitation code and becomes the merchant's staff (once)."""
    normalised = "".join(code.split()).replace("-", "").upper()
    invitation = db.session.scalars(
        select(StaffInvitation).where(StaffInvitation.code_hash == _code_hash(normalised)).with_for_update()
    ).one_or_none()
    if invitation is None:
        raise AppError("invalid_invitation_code", "This invitation code is not valid.", "邀请码无效。", 404)
    if invitation.used_at is not None:
        raise AppError("invitation_used", "This invitation code was already used.", "该邀请码已被使用。", 409)
    now = utcnow()
    if invitation.expires_at <= now:
        raise AppError("invitation_expired", "This invitation code has expired.", "该邀请码已过期。", 410)
    merchant = db.session.get(Merchant, invitation.merchant_id)
    if merchant is None or merchant.status != "active":
        raise _merchant_not_active()
    if _active_staff_of_citizen(citizen_id) is not None:
        raise _already_staff()
    store_ids = _check_stores(invitation.merchant_id, invitation.store_ids, invitation.role)
    staff = MerchantStaff(merchant_id=invitation.merchant_id, citizen_id=citizen_id, role=invitation.role,
                          label=invitation.label, status="active", created_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(staff)
            db.session.flush()
            db.session.add_all(MerchantStaffStore(staff_id=staff.id, store_id=store_id) for store_id in store_ids)
    except IntegrityError:  # a concurrent accept bound this citizen first
        raise _already_staff() from None
    invitation.used_at = now
    invitation.used_by_staff_id = staff.id
    db.session.flush()
    audit("merchant.staff_bound", actor_type="citizen", actor_id=citizen_id, object_type="merchant_staff",
          object_id=staff.id, details={"merchant_id": staff.merchant_id, "role": staff.role,
                                       "invitation_id": invitation.id, "store_ids": store_ids})
    return _views([staff])[0]


@dataclass(frozen=True)
class MerchantSignedIn:
    access_token: str
    expires_in: int
    token_type: str
    staff_id: int
    merchant_id: int
    role: str
    store_ids: list[int]


def start_merchant_session(citizen_id: int) -> MerchantSignedIn:
    """Merchant mode: a merchant-staff token for a citizen bound as active staff of an active merchant."""
    staff = _active_staff_of_citizen(citizen_id)
    if staff is None or not merchant_staff_may_act(staff.id):
        raise AppError("not_merchant_staff", "This account is not active staff of a merchant.",
                       "该账号不是商户的在职店员。", 403)
    token, expires_in = issue_access_token(f"merchant_staff:{staff.id}", staff.role)
    return MerchantSignedIn(access_token=token, expires_in=expires_in, token_type="Bearer", staff_id=staff.id,
                            merchant_id=staff.merchant_id, role=staff.role,
                            store_ids=sorted(staff_store_ids(staff.id)))


def _merchant_staff_row(merchant_id: int, staff_id: int, lock: bool = False) -> MerchantStaff:
    query = select(MerchantStaff).where(MerchantStaff.id == staff_id, MerchantStaff.merchant_id == merchant_id)
    row = db.session.scalars(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise _staff_not_found()
    return row


def update_merchant_staff(actor: Actor, merchant_id: int, staff_id: int, changes: dict[str, Any]) -> StaffView:
    """Change a staff member's stores, role or label (within `merchant_id`, the caller's own scope)."""
    staff = _merchant_staff_row(merchant_id, staff_id, lock=True)
    if staff.status != "active":
        raise _staff_not_found()
    role = changes.get("role", staff.role)
    _check_role(role)
    if actor.kind == "merchant_staff" and actor.id == staff.id and role != staff.role:
        raise AppError("cannot_change_own_role", "You cannot change your own role.", "不能修改自己的角色。", 409)
    done: dict[str, Any] = {}
    if role != staff.role:
        done["role"] = [staff.role, role]
        staff.role = role
    if "store_ids" in changes or "role" in changes:
        current = sorted(db.session.scalars(
            select(MerchantStaffStore.store_id).where(MerchantStaffStore.staff_id == staff.id)
        ))
        wanted = (_check_stores(merchant_id, changes["store_ids"], role) if "store_ids" in changes
                  else _check_stores(merchant_id, _open_only(merchant_id, current), role))
        if wanted != current:
            db.session.execute(
                MerchantStaffStore.__table__.delete().where(MerchantStaffStore.staff_id == staff.id)
            )
            db.session.add_all(MerchantStaffStore(staff_id=staff.id, store_id=store_id) for store_id in wanted)
            done["store_ids"] = wanted
    if "label" in changes and _clean_label(changes["label"]) != staff.label:
        staff.label = _clean_label(changes["label"])
        done["label"] = True
    if done:
        db.session.flush()
        audit("merchant.staff_updated", object_type="merchant_staff", object_id=staff.id,
              details={"merchant_id": merchant_id, **done}, **_actor_audit(actor))
    return _views([staff])[0]


def _open_only(merchant_id: int, store_ids: list[int]) -> list[int]:
    if not store_ids:
        return []
    return list(db.session.scalars(
        select(Store.id).where(Store.id.in_(store_ids), Store.merchant_id == merchant_id, Store.status == "active")
    ))


def remove_merchant_staff(actor: Actor, merchant_id: int, staff_id: int) -> None:
    """Unbind a staff member: their merchant token stops working at once."""
    staff = _merchant_staff_row(merchant_id, staff_id, lock=True)
    if staff.status != "active":
        raise _staff_not_found()
    if actor.kind == "merchant_staff" and actor.id == staff.id:
        raise AppError("cannot_remove_self", "You cannot remove yourself.", "不能移除自己。", 409)
    staff.status = "removed"
    staff.removed_at = utcnow()
    db.session.flush()
    audit("merchant.staff_removed", object_type="merchant_staff", object_id=staff.id,
          details={"merchant_id": merchant_id}, **_actor_audit(actor))


def _active_staff_of_citizen(citizen_id: int) -> MerchantStaff | None:
    return db.session.scalars(
        select(MerchantStaff).where(MerchantStaff.citizen_id == citizen_id, MerchantStaff.status == "active")
    ).one_or_none()


def _already_staff() -> AppError:
    return AppError("already_merchant_staff", "This account is already staff of a merchant.",
                    "该账号已是商户店员。", 409)


def _merchant_not_active() -> AppError:
    return AppError("merchant_not_active", "This merchant is suspended.", "该商户已停用。", 409)


def _clean_label(label: str | None) -> str | None:
    return (label or "").strip() or None


def _code_hash(code: str) -> bytes:
    # Keyed, so the code space cannot be brute-forced from a leaked table.
    return crypto.blind_index("merchant_staff_invitation", code)


def _id_cursor(cursor: str | None) -> int | None:
    after = decode_cursor(cursor, 1)
    if after is None:
        return None
    if type(after[0]) is not int:
        raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
    return after[0]


def merchant_me(staff_id: int) -> dict[str, Any]:
    """What merchant mode shows: who I am, my merchant, the stores I may act at."""
    staff = staff_view(staff_id)
    stores = list(db.session.scalars(
        select(Store).where(Store.id.in_(staff_store_ids(staff_id))).order_by(Store.id)
    ))
    return {"staff": staff, "merchant": get_merchant(staff.merchant_id), "stores": stores}
