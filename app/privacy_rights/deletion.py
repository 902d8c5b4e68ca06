"""Account deletion with confirmation (PIPL Art. 47).

Two steps, so a tap cannot delete an account: `request_deletion` says plainly what will happen and
returns a confirmation token valid for CONFIRM_SECONDS (only its hash is stored); `confirm_deletion`
with that token deletes, in one transaction:

1. unused coupons are cancelled (their holds voided, the points back on the account) and any other
   open hold is voided;
2. the remaining points are forfeited: posted from the citizen's account to FORFEIT_ACCOUNT through
   the ledger (never a patched balance), so the ledger's invariants and history stay valid;
3. bindings are ended and removed, consents withdrawn, pending appeals withdrawn, merchant roles ended;
4. the inventory's personal data is deleted or erased (app.privacy_rights.inventory), and the
   idempotency records (stored answers) of the citizen go;
5. the citizen row is closed: tokens stop working, and signing in with the same provider later
   creates a new account (the identity rows are gone).

The ledger keeps its entries under the citizen id, which then points to nobody. A retry of the
confirmation with the same token gets the same receipt. Audited; nothing personal is logged.
"""
from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, null, select, text, update
from sqlalchemy.dialects.postgresql import insert

from app import crypto
from app.accounts import service as accounts
from app.accounts.models import Citizen, Consent
from app.appeals import service as appeals
from app.audit import service as audit
from app.auth.tokens import invalid_token
from app.errors import AppError
from app.extensions import db
from app.idempotency.models import IdempotencyRecord
from app.ledger.service import account_balances, citizen_account_code, transfer, void_pending
from app.models_base import utcnow
from app.partners.models import BindingCode, PartnerBinding
from app.privacy_rights.inventory import INVENTORY
from app.privacy_rights.models import AccountDeletion
from rewards.coupons import service as coupons
from rewards.coupons.models import Coupon
from rewards.merchants.models import MerchantStaff

CONFIRM_SECONDS = 600
FORFEIT_ACCOUNT = "adjustment:forfeited_on_deletion"


def confirmation_invalid() -> AppError:
    return AppError("deletion_confirmation_invalid",
                    "This confirmation is not valid; ask to delete the account again.",
                    "确认码无效，请重新申请注销账户。", 403)


def confirmation_expired() -> AppError:
    return AppError("deletion_confirmation_expired",
                    "This confirmation has expired; ask to delete the account again.",
                    "确认码已过期，请重新申请注销账户。", 409)


# --- step 1: what will happen -----------------------------------------------------------------

def request_deletion(citizen_id: int) -> dict[str, Any]:
    """Tell the citizen what deletion does to their points, coupons and data; issue a confirmation."""
    accounts.lock_citizen(citizen_id)
    now = utcnow()
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=CONFIRM_SECONDS)
    db.session.execute(
        insert(AccountDeletion)
        .values(citizen_id=citizen_id, token_hash=crypto.token_hash(token), requested_at=now, expires_at=expires_at)
        .on_conflict_do_update(
            index_elements=[AccountDeletion.citizen_id],
            set_={"token_hash": crypto.token_hash(token), "requested_at": now, "expires_at": expires_at},
        )
    )
    summary = _what_happens(citizen_id)
    audit.record("account.deletion_requested", actor_type="citizen", actor_id=citizen_id, object_type="citizen",
                 object_id=citizen_id, details={k: v for k, v in summary.items() if isinstance(v, int)})
    return {**summary, "confirmation_token": token, "expires_at": expires_at}


def _what_happens(citizen_id: int) -> dict[str, Any]:
    balances = account_balances(citizen_id)
    issued = db.session.scalar(
        select(db.func.count()).where(Coupon.citizen_id == citizen_id, Coupon.status == "issued")
    ) or 0
    bindings = db.session.scalar(
        select(db.func.count()).where(PartnerBinding.citizen_id == citizen_id, PartnerBinding.unbound_at.is_(None))
    ) or 0
    points = balances.available + balances.held
    consequences = [
        {"en": f"Your {points} points are forfeited (including {balances.held} held by unused coupons); "
               "they cannot be restored or moved to another account.",
         "zh": f"你的 {points} 积分（含未使用券占用的 {balances.held} 积分）将作废，无法恢复或转移到其他账户。"},
        {"en": f"Your {issued} unused coupons are cancelled.", "zh": f"你未使用的 {issued} 张券将被取消。"},
        {"en": f"Your {bindings} partner bindings (transit cards, bike-share) are removed; "
               "their later trips are not credited.",
         "zh": f"你的 {bindings} 个合作方绑定（交通卡、共享单车等）将解除，之后的出行不再记分。"},
        {"en": "Your phone number, sign-in accounts, trip details, notifications, badges and what you wrote in "
               "appeals are erased. Signing in again later creates a new, empty account.",
         "zh": "你的手机号、登录方式、出行明细、通知、勋章及申诉内容将被删除。之后再次登录将创建一个全新的空账户。"},
        {"en": "The points ledger keeps its entries without anything that identifies you, so the platform's "
               "accounts still add up.",
         "zh": "积分账本将保留不含任何可识别你身份信息的记录，以保证平台账目平衡。"},
    ]
    return {
        "points_forfeited": points,
        "points_held_by_coupons": balances.held,
        "coupons_cancelled": issued,
        "bindings_removed": bindings,
        "consequences": consequences,
    }


# --- step 2: delete ------------------------------------------------------------------------------

def confirm_deletion(citizen_id: int, token: str) -> dict[str, Any]:
    """Delete the account if `token` is its current, unexpired confirmation; a retry gets the receipt."""
    request = db.session.get(AccountDeletion, citizen_id, with_for_update=True, populate_existing=True)
    if request is None or not hmac.compare_digest(request.token_hash, crypto.token_hash(token)):
        if accounts.active_citizen(citizen_id) is None:
            raise invalid_token("This account is closed.")
        raise confirmation_invalid()
    if request.deleted_at is not None:
        return receipt(request)
    if request.expires_at <= utcnow():
        raise confirmation_expired()
    accounts.lock_citizen(citizen_id)
    cancelled = _cancel_coupons(citizen_id)
    _void_open_holds(citizen_id)
    forfeited = _forfeit_points(citizen_id)
    bindings = _remove_bindings(citizen_id)
    _withdraw_consents(citizen_id)
    appeals.close_for_deleted_account(citizen_id)
    _end_merchant_roles(citizen_id)
    _erase_inventory(citizen_id)
    db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.scope == f"citizen:{citizen_id}"))
    now = utcnow()
    db.session.execute(update(Citizen).where(Citizen.id == citizen_id).values(status="closed", closed_at=now)
                       .execution_options(synchronize_session=False))
    request.deleted_at = now
    request.forfeited_points = forfeited
    request.coupons_cancelled = cancelled
    request.bindings_removed = bindings
    db.session.flush()
    audit.record("account.deleted", actor_type="citizen", actor_id=citizen_id, object_type="citizen",
                 object_id=citizen_id,
                 details={"forfeited_points": forfeited, "coupons_cancelled": cancelled, "bindings_removed": bindings})
    db.session.expire_all()
    return receipt(request)


def receipt(request: AccountDeletion) -> dict[str, Any]:
    return {
        "deleted_at": request.deleted_at,
        "points_forfeited": request.forfeited_points,
        "coupons_cancelled": request.coupons_cancelled,
        "bindings_removed": request.bindings_removed,
    }


def _cancel_coupons(citizen_id: int) -> int:
    """Cancel each unused coupon the way the citizen would (stock and claim count come back); one
    already past its end is closed as the expiry job would close it."""
    now = utcnow()
    issued = db.session.execute(
        select(Coupon.id, Coupon.hold_id, Coupon.expires_at)
        .where(Coupon.citizen_id == citizen_id, Coupon.status == "issued").order_by(Coupon.id).with_for_update()
    ).all()
    for coupon_id, hold_id, expires_at in issued:
        if expires_at > now:
            coupons.cancel_coupon(citizen_id, coupon_id)
        else:
            db.session.execute(update(Coupon).where(Coupon.id == coupon_id)
                               .values(status="expired", resolved_at=now).execution_options(synchronize_session=False))
            void_pending(hold_id, f"void:{hold_id}")
    return len(issued)


_OPEN_HOLDS = text(
    """
    SELECT h.id FROM ledger_transfers h
    JOIN ledger_accounts a ON a.id = h.debit_account_id AND a.citizen_id = :citizen_id
    WHERE h.citizen_id = :citizen_id AND h.pending
      AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = h.id)
    ORDER BY h.id
    """
)


def _void_open_holds(citizen_id: int) -> None:
    for (hold_id,) in db.session.execute(_OPEN_HOLDS, {"citizen_id": citizen_id}).all():
        void_pending(hold_id, f"void:{hold_id}")


def _forfeit_points(citizen_id: int) -> int:
    """Forfeit what is left; the account row is locked first, so the amount read is the amount moved."""
    db.session.execute(text("SELECT id FROM ledger_accounts WHERE citizen_id = :c FOR UPDATE"), {"c": citizen_id})
    available = account_balances(citizen_id).available
    if available > 0:
        transfer(f"forfeit:citizen:{citizen_id}", citizen_account_code(citizen_id), FORFEIT_ACCOUNT, available,
                 "forfeit", citizen_id=citizen_id, details={"reason": "account_deleted"})
    return available


def _remove_bindings(citizen_id: int) -> int:
    active = db.session.execute(
        select(PartnerBinding.id, PartnerBinding.partner_id)
        .where(PartnerBinding.citizen_id == citizen_id, PartnerBinding.unbound_at.is_(None))
    ).all()
    for binding_id, partner_id in active:
        audit.record("partner_binding.unbound", actor_type="citizen", actor_id=citizen_id,
                     object_type="partner_binding", object_id=binding_id,
                     details={"partner_id": partner_id, "by": "account_deletion"})
    db.session.execute(delete(BindingCode).where(BindingCode.citizen_id == citizen_id))
    return len(active)


def _withdraw_consents(citizen_id: int) -> None:
    db.session.execute(
        update(Consent).where(Consent.citizen_id == citizen_id, Consent.withdrawn_at.is_(None))
        .values(withdrawn_at=utcnow()).execution_options(synchronize_session=False)
    )


def _end_merchant_roles(citizen_id: int) -> None:
    db.session.execute(
        update(MerchantStaff).where(MerchantStaff.citizen_id == citizen_id, MerchantStaff.status == "active")
        .values(status="removed", removed_at=utcnow()).execution_options(synchronize_session=False)
    )


def _erase_inventory(citizen_id: int) -> None:
    """Delete or erase what the inventory says (bindings and identities included)."""
    for entry in INVENTORY:
        table = db.metadata.tables[entry.table]
        owned = table.c[entry.owner] == citizen_id
        if entry.on_delete == "delete":
            db.session.execute(delete(table).where(owned))
        elif entry.on_delete == "erase":
            values = {name: null() if value is None else value for name, value in entry.erase.items()}
            db.session.execute(update(table).where(owned).values(values))
