"""Redemption at checkout, its undo, the merchant's list and the monthly settlement CSV.

Exactly once: the coupon goes issued -> redeemed by one conditional UPDATE (concurrent attempts
queue on the row and find it redeemed), the hold is posted once (the ledger's unique index on
pending_id), and a partial unique index allows one live redemption row per coupon.

An undo never changes a posted transfer: a compensating transfer merchant -> citizen returns the
points, and a new hold re-reserves them for the coupon, which is issued again (so "issued" always
means "one open hold"). If the coupon's use window has ended meanwhile, it becomes expired and the
points simply stay with the citizen.
"""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from app.audit.service import record as audit
from app.auth.guard import Actor
from app.errors import AppError
from app.extensions import db, redis_client
from app.ledger.service import citizen_account_code, hold, post_pending, transfer
from app.models_base import utcnow
from app.pagination import decode_cursor, page
from rewards.coupons import tokens
from rewards.coupons.models import Coupon, Offer, Redemption
from rewards.coupons.service import coupon_not_found, coupon_state_error, hold_key_after_undo
from rewards.merchants.models import Store
from rewards.merchants.service import merchant_account_code, merchant_of_staff, staff_store_ids

SHANGHAI = ZoneInfo("Asia/Shanghai")
UNDO_WINDOW = timedelta(minutes=30)
# Typed short codes are 8 digits: a cashier who mistypes a few is fine, a script guessing is not.
SHORT_CODE_FAILURES_PER_MINUTE = 20


def wrong_merchant() -> AppError:
    return AppError("wrong_merchant", "This coupon belongs to another merchant.", "该券不属于本商户。", 403)


def store_not_allowed() -> AppError:
    return AppError("store_not_allowed", "You may not redeem coupons at this store.", "您无权在该门店核销。", 403)


def redemption_not_found() -> AppError:
    return AppError("redemption_not_found", "No such redemption.", "未找到该核销记录。", 404)


# ---------------------------------------------------------------------------------------------
# Redeeming

_REDEEM = text(
    """
    UPDATE coupons AS c SET status = 'redeemed', resolved_at = :now
    FROM offers AS o
    WHERE c.id = :id AND c.merchant_id = :merchant_id AND c.status = 'issued' AND c.valid_from <= :now
      AND c.expires_at > :now AND o.id = c.offer_id
    RETURNING c.hold_id, c.points, c.citizen_id, o.id AS offer_id, o.title_zh, o.title_en
    """
)


def _coupon_from_code(actor: Actor, merchant_id: int, token: str | None, short_code: str | None) -> int:
    if token is not None:
        return tokens.coupon_of_token(token)
    assert short_code is not None
    try:
        return tokens.coupon_of_short_code(merchant_id, short_code)
    except AppError:
        _count_short_code_failure(actor)
        raise


def _count_short_code_failure(actor: Actor) -> None:
    """Refuse a staff member who keeps typing unknown codes (guessing 10^8 codes needs many tries)."""
    redis = redis_client()
    name = f"coupon:code-failures:{actor.subject}"
    with redis.pipeline() as pipe:
        pipe.incr(name)
        pipe.expire(name, 60, nx=True)
        failures = pipe.execute()[0]
    if failures > SHORT_CODE_FAILURES_PER_MINUTE:
        raise AppError("rate_limited", "Too many unknown codes; wait a minute.",
                       "无效数字码过多，请一分钟后再试。", 429)


def redeem(actor: Actor, store_id: int, *, token: str | None = None, short_code: str | None = None) -> dict[str, Any]:
    """Redeem a coupon shown at the till: post its hold and mark it redeemed, exactly once.

    Returns what GET /merchant/redemptions lists for it (built from what the redemption read and
    wrote: no statement more while the merchant's ledger account is locked by the post).

    Refusals: 400 invalid_coupon_token, 409 token_expired, 403 store_not_allowed, 403 wrong_merchant,
    409 coupon_already_used / coupon_expired / coupon_cancelled / coupon_not_yet_valid.
    """
    merchant_id = merchant_of_staff(actor.id)
    coupon_id = _coupon_from_code(actor, merchant_id, token, short_code)
    if store_id not in staff_store_ids(actor.id):
        raise store_not_allowed()
    now = utcnow()
    row = db.session.execute(_REDEEM, {"id": coupon_id, "merchant_id": merchant_id, "now": now}).first()
    if row is None:
        raise _why_not_redeemable(coupon_id, merchant_id, now)
    posted = post_pending(row.hold_id, f"redeem:{row.hold_id}")
    redemption = Redemption(coupon_id=coupon_id, merchant_id=merchant_id, store_id=store_id, staff_id=actor.id,
                            points=row.points, hold_id=row.hold_id, post_transfer_id=posted.id, redeemed_at=now)
    db.session.add(redemption)
    db.session.flush()
    # The audit chain last, as claims and undos take it (lock order in rewards/coupons/service.py).
    audit("coupon.redeemed", actor_type=actor.kind, actor_id=actor.id, object_type="coupon_redemption",
          object_id=redemption.id, details={"coupon_id": coupon_id, "points": row.points, "store_id": store_id})
    return redemption_view(redemption, row.offer_id, row.title_zh, row.title_en)


def _why_not_redeemable(coupon_id: int, merchant_id: int, now: datetime) -> AppError:
    coupon = db.session.get(Coupon, coupon_id, populate_existing=True)
    if coupon is None:
        return coupon_not_found()
    if coupon.merchant_id != merchant_id:
        return wrong_merchant()
    if coupon.status != "issued":
        return coupon_state_error(coupon.status)
    if coupon.expires_at <= now:
        return coupon_state_error("expired")
    return AppError("coupon_not_yet_valid", "This coupon cannot be used yet.", "该券尚未到使用时间。", 409)


# ---------------------------------------------------------------------------------------------
# Undo (merchant admin, within 30 minutes)

_UNDO = text(
    """
    UPDATE coupon_redemptions SET undone_at = :now, undone_by_staff_id = :staff_id
    WHERE id = :id AND merchant_id = :merchant_id AND undone_at IS NULL AND redeemed_at > :oldest
    RETURNING coupon_id, points, store_id
    """
)


def undo_redemption(actor: Actor, redemption_id: int) -> Redemption:
    """Undo a mistaken redemption: points back to the citizen, the coupon usable again (audited)."""
    merchant_id = merchant_of_staff(actor.id)
    now = utcnow()
    row = db.session.execute(
        _UNDO,
        {"id": redemption_id, "merchant_id": merchant_id, "now": now, "staff_id": actor.id,
         "oldest": now - UNDO_WINDOW},
    ).first()
    if row is None:
        found = db.session.get(Redemption, redemption_id, populate_existing=True)
        if found is None or found.merchant_id != merchant_id:
            raise redemption_not_found()
        if found.undone_at is not None:
            raise AppError("redemption_already_undone", "This redemption was already undone.", "该核销已撤销。", 409)
        raise AppError("undo_window_passed", "A redemption can only be undone within 30 minutes.",
                       "核销只能在30分钟内撤销。", 409)
    coupon = db.session.get(Coupon, row.coupon_id, with_for_update=True, populate_existing=True)
    assert coupon is not None and coupon.status == "redeemed"
    details = {"reason": "coupon_redemption_undone", "coupon_id": coupon.id, "redemption_id": redemption_id,
               "merchant_id": merchant_id}
    refund = transfer(f"redemption:{redemption_id}:undo", merchant_account_code(merchant_id),
                      citizen_account_code(coupon.citizen_id), row.points, "redeem_undo",
                      citizen_id=coupon.citizen_id, details=details)
    if coupon.expires_at > now:
        held = hold(hold_key_after_undo(coupon.id, redemption_id), coupon.citizen_id,
                    merchant_account_code(merchant_id), row.points, timeout_at=coupon.expires_at,
                    details={**details, "reason": "coupon_claim"})
        coupon.hold_id = held.id
        coupon.status = "issued"
        coupon.resolved_at = None
    else:
        coupon.status = "expired"
        coupon.resolved_at = now
    db.session.execute(
        text("UPDATE coupon_redemptions SET undo_transfer_id = :t WHERE id = :id"),
        {"t": refund.id, "id": redemption_id},
    )
    db.session.flush()
    audit("coupon.redemption_undone", actor_type=actor.kind, actor_id=actor.id, object_type="coupon_redemption",
          object_id=redemption_id, details={"coupon_id": coupon.id, "points": row.points, "store_id": row.store_id,
                                            "coupon_status": coupon.status})
    redemption = db.session.get(Redemption, redemption_id, populate_existing=True)
    assert redemption is not None
    return redemption


# ---------------------------------------------------------------------------------------------
# Lists and settlement

def redemption_view(redemption: Redemption, offer_id: int, title_zh: str, title_en: str) -> dict[str, Any]:
    return {
        "id": redemption.id,
        "coupon_id": redemption.coupon_id,
        "offer_id": offer_id,
        "title_zh": title_zh,
        "title_en": title_en,
        "store_id": redemption.store_id,
        "staff_id": redemption.staff_id,
        "points": redemption.points,
        "redeemed_at": redemption.redeemed_at,
        "undone_at": redemption.undone_at,
        "undone_by_staff_id": redemption.undone_by_staff_id,
    }


def _shanghai_day(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


def list_redemptions(actor: Actor, cursor: str | None, limit: int, store_id: int | None,
                     day: date | None) -> dict[str, Any]:
    """The merchant's redemptions, newest first; `day` is an Asia/Shanghai calendar day."""
    merchant_id = merchant_of_staff(actor.id)
    query = (
        select(Redemption, Offer.id, Offer.title_zh, Offer.title_en)
        .join(Coupon, Coupon.id == Redemption.coupon_id)
        .join(Offer, Offer.id == Coupon.offer_id)
        .where(Redemption.merchant_id == merchant_id)
        .order_by(Redemption.id.desc())
        .limit(limit + 1)
    )
    if store_id is not None:
        query = query.where(Redemption.store_id == store_id)
    if day is not None:
        start, end = _shanghai_day(day)
        query = query.where(Redemption.redeemed_at >= start, Redemption.redeemed_at < end)
    after = decode_cursor(cursor, 1)
    if after is not None:
        if type(after[0]) is not int:
            raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
        query = query.where(Redemption.id < after[0])
    rows = [redemption_view(*row) for row in db.session.execute(query)]
    return page(rows, limit, key=lambda r: [r["id"]])


def redemption_for_merchant(actor: Actor, redemption_id: int) -> dict[str, Any]:
    merchant_id = merchant_of_staff(actor.id)
    row = db.session.execute(
        select(Redemption, Offer.id, Offer.title_zh, Offer.title_en)
        .join(Coupon, Coupon.id == Redemption.coupon_id)
        .join(Offer, Offer.id == Coupon.offer_id)
        .where(Redemption.id == redemption_id, Redemption.merchant_id == merchant_id)
    ).first()
    if row is None:
        raise redemption_not_found()
    return redemption_view(*row)


SETTLEMENT_COLUMNS = ("event", "at_shanghai", "redemption_id", "coupon_id", "offer_id", "offer_title", "store_id",
                      "store_name", "staff_id", "points")


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    year, number = int(month[:4]), int(month[5:7])
    start = datetime(year, number, 1, tzinfo=SHANGHAI)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=SHANGHAI)
    return start, end


def _cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas in text cells (CSV injection): a leading = + - @ is quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def settlement_csv(actor: Actor, month: str) -> str:
    """The month's redemptions (+points) and undos (-points), Asia/Shanghai time, with totals."""
    merchant_id = merchant_of_staff(actor.id)
    start, end = _month_bounds(month)
    rows = db.session.execute(
        select(Redemption, Offer.id, Offer.title_zh, Store.name)
        .join(Coupon, Coupon.id == Redemption.coupon_id)
        .join(Offer, Offer.id == Coupon.offer_id)
        .join(Store, Store.id == Redemption.store_id)
        .where(
            Redemption.merchant_id == merchant_id,
            ((Redemption.redeemed_at >= start) & (Redemption.redeemed_at < end))
            | ((Redemption.undone_at >= start) & (Redemption.undone_at < end)),
        )
        .order_by(Redemption.id)
    ).all()
    events: list[tuple[datetime, str, Redemption, int, str, str]] = []
    for redemption, offer_id, title, store_name in rows:
        if start <= redemption.redeemed_at < end:
            events.append((redemption.redeemed_at, "redemption", redemption, offer_id, title, store_name))
        if redemption.undone_at is not None and start <= redemption.undone_at < end:
            events.append((redemption.undone_at, "undo", redemption, offer_id, title, store_name))
    events.sort(key=lambda e: (e[0], e[2].id, e[1] == "undo"))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SETTLEMENT_COLUMNS)
    totals = {"redemption": [0, 0], "undo": [0, 0]}
    for at, kind, redemption, offer_id, title, store_name in events:
        points = redemption.points if kind == "redemption" else -redemption.points
        totals[kind][0] += 1
        totals[kind][1] += points
        writer.writerow([kind, at.astimezone(SHANGHAI).isoformat(timespec="seconds"), redemption.id,
                         redemption.coupon_id, offer_id, _cell(title), redemption.store_id, _cell(store_name),
                         redemption.staff_id if kind == "redemption" else redemption.undone_by_staff_id, points])
    writer.writerow([])
    writer.writerow(["total_redemptions", month, totals["redemption"][0], "", "", "", "", "", "",
                     totals["redemption"][1]])
    writer.writerow(["total_undos", month, totals["undo"][0], "", "", "", "", "", "", totals["undo"][1]])
    writer.writerow(["net_points", month, "", "", "", "", "", "", "", totals["redemption"][1] + totals["undo"][1]])
    return out.getvalue()
