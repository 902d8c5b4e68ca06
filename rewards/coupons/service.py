"""Offers and coupons: publishing, browsing, claiming (hold + coupon, or an honour exchanged at once),
cancelling, expiring.

Concurrency rules (DESIGN §The ledger, SECURITY §Ledger integrity): every limit is a conditional
UPDATE in the database, never read-check-write. Locks are taken in one global order — a coupon row,
the citizen's claim counter, ledger accounts (citizens, then system accounts), the offer row, the
audit chain — so no two of these transactions wait on each other in a cycle: a claim takes the
counter, the citizen's account (the hold; a merchant's account is not locked), the offer row, the
audit chain; a cancellation the coupon, the counter, the citizen's account (void), the offer row,
the audit chain; editing an offer the offer row, then the audit chain. The offer row is the hot one
(every claim of an offer takes it), so it comes last, just before the commit.
Services flush, never commit; refusals raise AppError.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Select, and_, func, or_, select, text, tuple_

from app.accounts.districts import DISTRICT_CODES
from app.audit.service import record as audit
from app.auth.guard import Actor
from app.errors import AppError
from app.extensions import db
from app.ledger.service import citizen_account_code, hold, transfer, void_pending
from app.models_base import utcnow
from app.pagination import decode_cursor, page
from rewards.coupons.models import OFFER_STATUSES, Coupon, Offer
from rewards.honours.models import HonourBadge
from rewards.honours.service import badge_view, grant_honour, holds_honour
from rewards.merchants.models import Merchant
from rewards.merchants.service import merchant_account_code, merchant_of_staff

# draft -> live -> paused <-> live. A paused offer stops claims at once (the claim's conditional
# update requires status = 'live'); coupons already issued stay valid.
STATUS_TRANSITIONS = {("draft", "live"), ("live", "paused"), ("paused", "live")}
# Fields that may change once an offer has been published (price, stock and windows are promises).
EDITABLE_WHEN_PUBLISHED = ("title_zh", "title_en", "terms_zh", "terms_en")
OFFER_FIELDS = (
    "kind", "badge_code", "title_zh", "title_en", "terms_zh", "terms_en", "points_price", "total_stock",
    "per_citizen_limit", "claim_starts_at", "claim_ends_at", "use_starts_at", "use_ends_at", "valid_days",
    "category", "districts", "points_budget", "rural_revitalisation",
)
EXPIRY_BATCH = 1000


# ---------------------------------------------------------------------------------------------
# Errors

def offer_not_found() -> AppError:
    return AppError("offer_not_found", "No such offer.", "未找到该权益。", 404)


def offer_not_available() -> AppError:
    return AppError("offer_not_available", "This offer cannot be claimed now (paused or outside its window).",
                    "该权益当前不可领取（已暂停或不在领取期内）。", 409)


def out_of_stock() -> AppError:
    return AppError("out_of_stock", "This offer is sold out.", "该权益已领完。", 409)


def claim_limit_reached() -> AppError:
    return AppError("claim_limit_reached", "You have claimed this offer as many times as allowed.",
                    "您领取该权益的次数已达上限。", 409)


def coupon_not_found() -> AppError:
    return AppError("coupon_not_found", "No such coupon.", "未找到该券。", 404)


def coupon_state_error(status: str) -> AppError:
    """Why an unused coupon was expected and this one is not."""
    if status == "redeemed":
        return AppError("coupon_already_used", "This coupon has already been used.", "该券已被使用。", 409)
    if status == "cancelled":
        return AppError("coupon_cancelled", "This coupon was cancelled.", "该券已取消。", 409)
    return AppError("coupon_expired", "This coupon has expired.", "该券已过期。", 409)


def _invalid(code: str, message: str, message_zh: str) -> AppError:
    return AppError(code, message, message_zh, 400)


# ---------------------------------------------------------------------------------------------
# Publishing (operators for any merchant, merchant admins for their own)

def actor_merchant(actor: Actor) -> int | None:
    """The merchant a merchant-side actor is bound to; None for operators (they act for any merchant)."""
    return merchant_of_staff(actor.id) if actor.kind == "merchant_staff" else None


def _validate_honour(values: dict[str, Any]) -> None:
    """An honour offer grants a badge that only offers grant (rule `granted`), once per citizen."""
    if any(values.get(name) is not None for name in ("use_starts_at", "use_ends_at", "valid_days")):
        raise _invalid("invalid_use_window", "An honour offer has no use window: the honour is granted at once.",
                       "荣誉兑换即时授予，无使用期。")
    if values.get("per_citizen_limit") != 1:
        raise _invalid("invalid_claim_limit", "An honour is held once: an honour offer's per_citizen_limit is 1.",
                       "荣誉每人仅可获得一次：荣誉兑换的每人限领数须为1。")
    code = values.get("badge_code")
    badge = db.session.get(HonourBadge, code) if code else None
    if badge is None or not badge.active or badge.rule_type != "granted":
        raise _invalid("invalid_badge", "Name an active honour whose rule is `granted` (badge_code).",
                       "须指定一个有效且仅可兑换获得的荣誉（badge_code）。")


def _validate_offer(values: dict[str, Any]) -> None:
    if values["kind"] == "honour":
        _validate_honour(values)
    elif values.get("badge_code") is not None:
        raise _invalid("invalid_badge", "Only an honour offer names a badge.", "仅荣誉兑换可指定荣誉。")
    if values["claim_ends_at"] <= values["claim_starts_at"]:
        raise _invalid("invalid_claim_window", "claim_ends_at must be after claim_starts_at.",
                       "领取结束时间须晚于开始时间。")
    if values["kind"] != "honour" and (values.get("use_ends_at") is None) == (values.get("valid_days") is None):
        raise _invalid("invalid_use_window", "Give either use_ends_at or valid_days, not both.",
                       "使用期须二选一：use_ends_at 或 valid_days。")
    if values.get("use_ends_at") is not None:
        start = values.get("use_starts_at") or values["claim_starts_at"]
        if values["use_ends_at"] <= start or values["use_ends_at"] <= values["claim_starts_at"]:
            raise _invalid("invalid_use_window", "use_ends_at must be after the use start and the claim start.",
                           "使用结束时间须晚于使用开始时间和领取开始时间。")
    elif values.get("use_starts_at") is not None:
        raise _invalid("invalid_use_window", "use_starts_at goes with use_ends_at, not valid_days.",
                       "use_starts_at 须与 use_ends_at 一起使用。")
    unknown = set(values.get("districts") or ()) - DISTRICT_CODES
    if unknown:
        raise _invalid("invalid_district", "Districts must be among Shanghai's 16 district codes.",
                       "区须为上海市16个区的代码。")
    budget = values.get("points_budget")
    if budget is not None and budget < values["points_price"]:
        raise _invalid("invalid_budget", "The points budget must cover at least one claim.",
                       "积分预算至少须够一次领取。")


def create_offer(actor: Actor, values: dict[str, Any]) -> Offer:
    """A new offer, in draft. Operators name the merchant; a merchant admin's is their own.

    An honour offer (荣誉兑换) is the platform's, not a merchant's: operators only, no merchant_id.
    """
    if values.get("kind") == "honour":
        return _create_honour_offer(actor, values)
    own = actor_merchant(actor)
    merchant_id = own if own is not None else values.get("merchant_id")
    if own is not None and values.get("merchant_id") not in (None, own):
        raise offer_not_found_for_merchant()
    if merchant_id is None:
        raise _invalid("merchant_required", "Operators must name the merchant (merchant_id).",
                       "运营人员须指定商户（merchant_id）。")
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise AppError("merchant_not_found", "No such merchant.", "未找到该商户。", 404)
    if merchant.status != "active":
        raise AppError("merchant_not_active", "This merchant is suspended.", "该商户已被暂停。", 409)
    return _insert_offer(actor, merchant_id, values)


def _create_honour_offer(actor: Actor, values: dict[str, Any]) -> Offer:
    if actor.kind == "merchant_staff":
        raise AppError("honour_offer_operator_only", "Honour offers are published by operators only.",
                       "荣誉兑换仅可由运营人员发布。", 403)
    if values.get("merchant_id") is not None:
        raise _invalid("merchant_not_allowed", "An honour offer has no merchant (omit merchant_id).",
                       "荣誉兑换不属于任何商户（请勿填写 merchant_id）。")
    return _insert_offer(actor, None, values)


def _insert_offer(actor: Actor, merchant_id: int | None, values: dict[str, Any]) -> Offer:
    data = {name: values.get(name) for name in OFFER_FIELDS}
    data["districts"] = sorted(set(data["districts"] or ()))
    data["rural_revitalisation"] = bool(data["rural_revitalisation"])
    _validate_offer(data)
    offer = Offer(merchant_id=merchant_id, remaining=data["total_stock"], budget_used=0, status="draft",
                  created_by=actor.subject, **data)
    db.session.add(offer)
    db.session.flush()
    audit("offer.created", actor_type=actor.kind, actor_id=actor.id, object_type="offer", object_id=offer.id,
          details={"merchant_id": merchant_id, "kind": offer.kind, "badge_code": offer.badge_code,
                   "points_price": offer.points_price, "stock": offer.total_stock})
    return offer


def offer_not_found_for_merchant() -> AppError:
    return AppError("wrong_merchant", "You can only manage your own merchant's offers.",
                    "只能管理本商户的权益。", 403)


def managed_offer(actor: Actor, offer_id: int, *, lock: bool = False) -> Offer:
    """An offer the actor may manage; another merchant's offer is simply not found (BOLA)."""
    offer = db.session.get(Offer, offer_id, with_for_update=lock)
    own = actor_merchant(actor)
    if offer is None or (own is not None and offer.merchant_id != own):
        raise offer_not_found()
    return offer


def list_managed_offers(actor: Actor, cursor: str | None, limit: int, merchant_id: int | None,
                        status: str | None) -> dict[str, Any]:
    own = actor_merchant(actor)
    query = select(Offer).order_by(Offer.id.desc()).limit(limit + 1)
    if own is not None:
        query = query.where(Offer.merchant_id == own)
    elif merchant_id is not None:
        query = query.where(Offer.merchant_id == merchant_id)
    if status is not None:
        query = query.where(Offer.status == status)
    after = _int_cursor(cursor)
    if after is not None:
        query = query.where(Offer.id < after)
    return page(list(db.session.scalars(query)), limit, key=lambda offer: [offer.id])


def update_offer(actor: Actor, offer_id: int, changes: dict[str, Any]) -> Offer:
    """Edit a draft freely; once published only titles and terms; change status (pause at once)."""
    offer = managed_offer(actor, offer_id, lock=True)
    status = changes.pop("status", None)
    done: dict[str, Any] = {}
    if changes:
        if offer.status != "draft" and set(changes) - set(EDITABLE_WHEN_PUBLISHED):
            raise AppError("offer_published", "A published offer's price, stock and windows cannot change.",
                           "已发布权益的价格、库存和有效期不可修改。", 409)
        if "kind" in changes and (changes["kind"] == "honour") != (offer.kind == "honour"):
            raise AppError("offer_kind_fixed", "An offer cannot become or stop being an honour offer.",
                           "权益不能在荣誉兑换与券之间转换。", 409)
        merged = {name: getattr(offer, name) for name in OFFER_FIELDS}
        merged.update(changes)
        if "districts" in changes:
            merged["districts"] = sorted(set(changes["districts"] or ()))
        _validate_offer(merged)
        for name, value in merged.items():
            if getattr(offer, name) != value:
                setattr(offer, name, value)
                done[name] = True
        if "total_stock" in done:
            offer.remaining = offer.total_stock  # a draft has had no claims
    if status is not None and status != offer.status:
        if status not in OFFER_STATUSES or (offer.status, status) not in STATUS_TRANSITIONS:
            raise AppError("invalid_status_change", f"An offer cannot go from {offer.status} to {status}.",
                           f"权益状态不能从 {offer.status} 变为 {status}。", 409)
        done["status"] = [offer.status, status]
        offer.status = status
    if done:
        offer.updated_at = utcnow()
        db.session.flush()
        audit("offer.updated", actor_type=actor.kind, actor_id=actor.id, object_type="offer", object_id=offer.id,
              details={"changed": sorted(done), **({"status": done["status"]} if "status" in done else {})})
    return offer


# ---------------------------------------------------------------------------------------------
# Browsing (citizens)

def _claimable_now(now: datetime) -> Any:
    return and_(Offer.status == "live", Offer.claim_starts_at <= now, Offer.claim_ends_at > now)


def list_offers(cursor: str | None, limit: int, *, category: str | None = None, district: str | None = None,
                merchant_id: int | None = None) -> dict[str, Any]:
    """Live offers in their claim window, rural-revitalisation (乡村振兴) first, then newest."""
    now = utcnow()
    rural = Offer.rural_revitalisation.cast(Integer)
    query: Select[Any] = (
        select(Offer, Merchant.name_zh, Merchant.name_en)
        .outerjoin(Merchant, Merchant.id == Offer.merchant_id)
        .where(_claimable_now(now), _merchant_active())
        .order_by(Offer.rural_revitalisation.desc(), Offer.id.desc())
        .limit(limit + 1)
    )
    if category is not None:
        query = query.where(Offer.category == category)
    if district is not None:
        query = query.where(or_(func.cardinality(Offer.districts) == 0, Offer.districts.any(district)))
    if merchant_id is not None:
        query = query.where(Offer.merchant_id == merchant_id)
    after = decode_cursor(cursor, 2)
    if after is not None:
        if not all(type(v) is int for v in after):
            raise _invalid_cursor()
        query = query.where(tuple_(rural, Offer.id) < tuple_(after[0], after[1]))
    rows = [_offer_view(offer, name_zh, name_en) for offer, name_zh, name_en in db.session.execute(query)]
    return page(rows, limit, key=lambda row: [int(row["rural_revitalisation"]), row["id"]])


def get_offer(offer_id: int) -> dict[str, Any]:
    """A live offer (claimable or not right now); drafts and paused offers are not shown to citizens."""
    row = db.session.execute(
        select(Offer, Merchant.name_zh, Merchant.name_en)
        .outerjoin(Merchant, Merchant.id == Offer.merchant_id)
        .where(Offer.id == offer_id, Offer.status == "live", _merchant_active())
    ).first()
    if row is None:
        raise offer_not_found()
    return _offer_view(*row)


def _merchant_active() -> Any:
    """The offer's merchant is active, or it has none (an honour offer is the platform's)."""
    return or_(Offer.merchant_id.is_(None), Merchant.status == "active")


def _offer_view(offer: Offer, merchant_name_zh: str | None, merchant_name_en: str | None) -> dict[str, Any]:
    now = utcnow()
    return {
        **{name: getattr(offer, name) for name in OFFER_FIELDS},
        "id": offer.id,
        "merchant_id": offer.merchant_id,
        "merchant_name_zh": merchant_name_zh,
        "merchant_name_en": merchant_name_en,
        "remaining": offer.remaining,
        "status": offer.status,
        "claimable": offer.status == "live" and offer.claim_starts_at <= now < offer.claim_ends_at
        and offer.remaining > 0,
    }


def _int_cursor(cursor: str | None) -> int | None:
    after = decode_cursor(cursor, 1)
    if after is None:
        return None
    if type(after[0]) is not int:
        raise _invalid_cursor()
    return after[0]


def _invalid_cursor() -> AppError:
    return AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)


# ---------------------------------------------------------------------------------------------
# Claiming
#
# A claim takes its locks in the global order (module docstring) and the hot ones last: the
# citizen's claim counter, the citizen's ledger account (the hold), then the offer row (stock) and
# the audit chain, both held until the commit right after. Everything a claim can do before the
# stock is taken is done before it, so claimers of one offer queue only for that last stretch.

_COUNT_CLAIM = text(
    """
    INSERT INTO offer_claim_counts (offer_id, citizen_id, claimed) VALUES (:offer_id, :citizen_id, 1)
    ON CONFLICT (offer_id, citizen_id)
    DO UPDATE SET claimed = offer_claim_counts.claimed + 1 WHERE offer_claim_counts.claimed < :claim_limit
    RETURNING claimed, nextval(pg_get_serial_sequence(:claim_table, 'id')) AS claim_id
    """
)

# The stock decrement: one conditional UPDATE, so stock can never go below zero whatever the
# concurrency; concurrent claimers queue on the row and re-check the condition after the first
# commits. What the claim gives is inserted by the same statement, only if the stock was taken.
_TAKE_STOCK = """
    WITH taken AS (
        UPDATE offers SET remaining = remaining - 1, budget_used = budget_used + points_price
        WHERE id = :offer_id AND status = 'live' AND remaining > 0
          AND claim_starts_at <= :now AND claim_ends_at > :now
          AND (points_budget IS NULL OR budget_used + points_price <= points_budget)
        RETURNING id
    ), issued AS (
        {insert} FROM taken
        {on_conflict}
        RETURNING id
    )
    SELECT (SELECT id FROM taken) AS taken, (SELECT id FROM issued) AS issued
"""
_TAKE_STOCK_FOR_COUPON = text(_TAKE_STOCK.format(
    insert="INSERT INTO coupons (id, offer_id, merchant_id, citizen_id, points, hold_id, status, valid_from, "
           "expires_at, created_at) SELECT :claim_id, :offer_id, :merchant_id, :citizen_id, :points, :hold_id, "
           "'issued', :valid_from, :expires_at, :now",
    on_conflict="",
))
# A citizen's second exchange of one badge (through another offer, at the same moment) inserts
# nothing and is refused: the citizen_honours row is the guarantee, this keeps the error a 409.
_TAKE_STOCK_FOR_HONOUR = text(_TAKE_STOCK.format(
    insert="INSERT INTO honour_exchanges (id, offer_id, citizen_id, badge_code, points, transfer_id, created_at) "
           "SELECT :claim_id, :offer_id, :citizen_id, :badge_code, :points, :transfer_id, :now",
    on_conflict="ON CONFLICT DO NOTHING",
))


def honour_already_held() -> AppError:
    return AppError("honour_already_held", "You already hold this honour.", "您已获得该荣誉。", 409)


def honour_account_code(badge_code: str) -> str:
    """Where points exchanged for a badge go (spent, 消纳): one account per badge, never paid out."""
    return f"honour:{badge_code}"


def _coupon_validity(offer: Offer, now: datetime) -> tuple[datetime, datetime]:
    if offer.valid_days is not None:
        return now, now + timedelta(days=offer.valid_days)
    assert offer.use_ends_at is not None
    return offer.use_starts_at or now, offer.use_ends_at


def claim_offer(citizen_id: int, offer_id: int) -> dict[str, Any]:
    """Claim an offer in the caller's transaction: limit, stock, budget, then what it gives.

    A coupon or voucher: the points are held and a coupon issued. An honour (荣誉兑换): the points are
    spent at once and the badge granted. Returns what GET /me/coupons/{id} shows (with `honour` for
    an honour). Refusals: 404 offer_not_found, 409 offer_not_available / out_of_stock /
    claim_limit_reached / insufficient_points / honour_already_held. Any refusal rolls the whole
    claim back (the request boundary). Audited (offer.claimed).
    """
    now = utcnow()
    found = db.session.execute(
        select(Offer, Merchant.status, Merchant.name_zh, Merchant.name_en)
        .outerjoin(Merchant, Merchant.id == Offer.merchant_id)
        .where(Offer.id == offer_id)
    ).first()
    if found is None or found[0].status == "draft":
        raise offer_not_found()
    offer, merchant_status, merchant_name_zh, merchant_name_en = found
    honour = offer.kind == "honour"
    valid_from, expires_at = (now, now) if honour else _coupon_validity(offer, now)
    if (offer.status != "live" or merchant_status not in (None, "active")
            or not offer.claim_starts_at <= now < offer.claim_ends_at or (not honour and expires_at <= now)):
        raise offer_not_available()
    if offer.remaining <= 0:  # cheap early answer; the conditional update below is what decides
        raise out_of_stock()
    if honour and holds_honour(citizen_id, offer.badge_code or ""):
        raise honour_already_held()
    counted = db.session.execute(
        _COUNT_CLAIM, {"offer_id": offer_id, "citizen_id": citizen_id, "claim_limit": offer.per_citizen_limit,
                       "claim_table": "honour_exchanges" if honour else "coupons"},
    ).first()
    if counted is None:
        raise claim_limit_reached()
    claim_id = int(counted.claim_id)
    if honour:
        return _exchange_honour(citizen_id, offer, claim_id, now)
    assert offer.merchant_id is not None  # a coupon's offer always has one (CHECK merchant_unless_honour)
    held = hold(
        f"coupon:{claim_id}:hold", citizen_id, merchant_account_code(offer.merchant_id), offer.points_price,
        timeout_at=expires_at,
        details={"reason": "coupon_claim", "coupon_id": claim_id, "offer_id": offer.id,
                 "merchant_id": offer.merchant_id, "title_zh": offer.title_zh, "title_en": offer.title_en},
    )
    _take_stock(_TAKE_STOCK_FOR_COUPON, {
        "offer_id": offer.id, "now": now, "claim_id": claim_id, "merchant_id": offer.merchant_id,
        "citizen_id": citizen_id, "points": offer.points_price, "hold_id": held.id, "valid_from": valid_from,
        "expires_at": expires_at,
    })
    _audit_claim(citizen_id, offer, "coupon", claim_id)
    return {
        **_claim_view(offer, merchant_name_zh, merchant_name_en),
        "id": claim_id, "status": "issued", "valid_from": valid_from, "expires_at": expires_at, "claimed_at": now,
        "resolved_at": None, "honour": None,
    }


def _exchange_honour(citizen_id: int, offer: Offer, claim_id: int, now: datetime) -> dict[str, Any]:
    """Spend the points (posted at once: no hold, no coupon) and grant the offer's badge."""
    badge_code = offer.badge_code
    assert badge_code is not None
    spent = transfer(
        f"offer:{offer.id}:honour:citizen:{citizen_id}", citizen_account_code(citizen_id),
        honour_account_code(badge_code), offer.points_price, "exchange", citizen_id=citizen_id,
        details={"reason": "honour_exchange", "offer_id": offer.id, "exchange_id": claim_id, "badge_code": badge_code,
                 "title_zh": offer.title_zh, "title_en": offer.title_en},
    )
    _take_stock(_TAKE_STOCK_FOR_HONOUR, {
        "offer_id": offer.id, "now": now, "claim_id": claim_id, "citizen_id": citizen_id, "badge_code": badge_code,
        "points": offer.points_price, "transfer_id": spent.id,
    })
    if not grant_honour(citizen_id, badge_code, source=f"offer:{offer.id}"):
        raise honour_already_held()
    _audit_claim(citizen_id, offer, "honour_exchange", claim_id)
    badge = db.session.get(HonourBadge, badge_code)
    assert badge is not None
    return {
        **_claim_view(offer, None, None),
        "id": claim_id, "status": "granted", "valid_from": None, "expires_at": None, "claimed_at": now,
        "resolved_at": now, "honour": {**badge_view(badge), "awarded_at": now, "source": "offer"},
    }


def _take_stock(statement: Any, params: dict[str, Any]) -> None:
    row = db.session.execute(statement, params).one()
    if row.taken is None:
        raise _why_no_stock(params["offer_id"])
    if row.issued is None:
        raise honour_already_held()


def _audit_claim(citizen_id: int, offer: Offer, object_type: str, object_id: int) -> None:
    audit("offer.claimed", actor_type="citizen", actor_id=citizen_id, object_type=object_type, object_id=object_id,
          details={"offer_id": offer.id, "kind": offer.kind, "points": offer.points_price,
                   **({"badge_code": offer.badge_code} if offer.badge_code else {"merchant_id": offer.merchant_id})})


def _claim_view(offer: Offer, merchant_name_zh: str | None, merchant_name_en: str | None) -> dict[str, Any]:
    return {
        "offer_id": offer.id, "kind": offer.kind, "title_zh": offer.title_zh, "title_en": offer.title_en,
        "terms_zh": offer.terms_zh, "terms_en": offer.terms_en, "merchant_id": offer.merchant_id,
        "merchant_name_zh": merchant_name_zh, "merchant_name_en": merchant_name_en, "points": offer.points_price,
    }


def _why_no_stock(offer_id: int) -> AppError:
    """The conditional update found nothing: say why, from the row as it is now (after our wait)."""
    row = db.session.execute(
        text("SELECT status, remaining, claim_starts_at, claim_ends_at, points_budget, budget_used, points_price "
             "FROM offers WHERE id = :id"),
        {"id": offer_id},
    ).one()
    now = utcnow()
    if row.status != "live" or not row.claim_starts_at <= now < row.claim_ends_at:
        return offer_not_available()
    if row.remaining <= 0:
        return out_of_stock()
    return AppError("out_of_stock", "This offer's points budget is used up.", "该权益的积分预算已用完。", 409)


# ---------------------------------------------------------------------------------------------
# The citizen's coupons

def _coupon_query() -> Select[Any]:
    return select(Coupon, Offer, Merchant.name_zh, Merchant.name_en).join(Offer, Offer.id == Coupon.offer_id).join(
        Merchant, Merchant.id == Coupon.merchant_id
    )


def coupon_view(coupon: Coupon, offer: Offer, merchant_name_zh: str, merchant_name_en: str) -> dict[str, Any]:
    return {
        "id": coupon.id,
        "offer_id": offer.id,
        "kind": offer.kind,
        "title_zh": offer.title_zh,
        "title_en": offer.title_en,
        "terms_zh": offer.terms_zh,
        "terms_en": offer.terms_en,
        "merchant_id": coupon.merchant_id,
        "merchant_name_zh": merchant_name_zh,
        "merchant_name_en": merchant_name_en,
        "points": coupon.points,
        "status": coupon.status,
        "valid_from": coupon.valid_from,
        "expires_at": coupon.expires_at,
        "claimed_at": coupon.created_at,
        "resolved_at": coupon.resolved_at,
    }


def my_coupon(citizen_id: int, coupon_id: int) -> dict[str, Any]:
    row = db.session.execute(_coupon_query().where(Coupon.id == coupon_id, Coupon.citizen_id == citizen_id)).first()
    if row is None:
        raise coupon_not_found()
    return coupon_view(*row)


def my_coupons(citizen_id: int, cursor: str | None, limit: int, status: str | None) -> dict[str, Any]:
    """My coupons, newest first, optionally only one status."""
    query = _coupon_query().where(Coupon.citizen_id == citizen_id).order_by(Coupon.id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(Coupon.status == status)
    after = _int_cursor(cursor)
    if after is not None:
        query = query.where(Coupon.id < after)
    return page([coupon_view(*row) for row in db.session.execute(query)], limit, key=lambda c: [c["id"]])


def coupon_for_qr(citizen_id: int, coupon_id: int) -> Coupon:
    """My coupon, if it can still be shown at a till (issued and not expired)."""
    coupon = db.session.get(Coupon, coupon_id)
    if coupon is None or coupon.citizen_id != citizen_id:
        raise coupon_not_found()
    if coupon.status != "issued":
        raise coupon_state_error(coupon.status)
    if coupon.expires_at <= utcnow():
        raise coupon_state_error("expired")
    return coupon


_CANCEL = text(
    """
    UPDATE coupons SET status = 'cancelled', resolved_at = :now
    WHERE id = :id AND citizen_id = :citizen_id AND status = 'issued' AND expires_at > :now
    RETURNING offer_id, hold_id, points
    """
)


def cancel_coupon(citizen_id: int, coupon_id: int) -> dict[str, Any]:
    """Cancel my unused coupon: the hold is voided (points back), the stock and my claim come back."""
    now = utcnow()
    row = db.session.execute(_CANCEL, {"id": coupon_id, "citizen_id": citizen_id, "now": now}).first()
    if row is None:
        coupon = db.session.get(Coupon, coupon_id)
        if coupon is None or coupon.citizen_id != citizen_id:
            raise coupon_not_found()
        raise coupon_state_error("expired" if coupon.status == "issued" else coupon.status)
    db.session.execute(
        text("UPDATE offer_claim_counts SET claimed = claimed - 1 "
             "WHERE offer_id = :offer_id AND citizen_id = :citizen_id AND claimed > 0"),
        {"offer_id": row.offer_id, "citizen_id": citizen_id},
    )
    void_pending(row.hold_id, f"void:{row.hold_id}")
    # The offer row and the audit chain last, as a claim takes them (module docstring).
    db.session.execute(
        text("UPDATE offers SET remaining = remaining + 1, budget_used = greatest(budget_used - :points, 0) "
             "WHERE id = :offer_id"),
        {"offer_id": row.offer_id, "points": row.points},
    )
    audit("coupon.cancelled", actor_type="citizen", actor_id=citizen_id, object_type="coupon", object_id=coupon_id,
          details={"offer_id": row.offer_id, "points": row.points})
    db.session.expire_all()
    return my_coupon(citizen_id, coupon_id)


def expire_due_coupons(limit: int = EXPIRY_BATCH) -> int:
    """Void the holds of unused coupons past their end; a rerun finds nothing more to do.

    Rows are taken FOR UPDATE SKIP LOCKED, so two runs at once share the work instead of waiting;
    the void's key is derived from the hold, so nothing can void a hold twice. Stock does not come
    back (the coupon was claimed and left unused).
    """
    now = utcnow()
    rows = db.session.execute(
        text("SELECT id, hold_id FROM coupons WHERE status = 'issued' AND expires_at <= :now "
             "ORDER BY expires_at, id LIMIT :limit FOR UPDATE SKIP LOCKED"),
        {"now": now, "limit": limit},
    ).all()
    if not rows:
        return 0
    db.session.execute(
        text("UPDATE coupons SET status = 'expired', resolved_at = :now WHERE id = ANY(:ids)"),
        {"now": now, "ids": [row.id for row in rows]},
    )
    for row in rows:
        void_pending(row.hold_id, f"void:{row.hold_id}")
    return len(rows)


def hold_key_after_undo(coupon_id: int, redemption_id: int) -> str:
    """The key of the hold that re-reserves a coupon's points after its redemption was undone."""
    return f"coupon:{coupon_id}:hold:undo:{redemption_id}"

