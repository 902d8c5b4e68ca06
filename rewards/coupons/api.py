"""HTTP routes for offers, coupons and redemption at checkout: parse, call the service, dump."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import segno
from flask import Response, current_app, g, request
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, citizen_required, role_required
from app.errors import AppError
from app.idempotency.service import HEADER, IDEMPOTENCY_KEY_PARAMETER, idempotent
from rewards.coupons import redemption as redemptions
from rewards.coupons import service, tokens
from rewards.coupons.schemas import (
    ClaimSchema,
    CouponListArgs,
    CouponListSchema,
    CouponQrSchema,
    CouponSchema,
    OfferCreateSchema,
    OfferListArgs,
    OfferManagedListArgs,
    OfferManagedListSchema,
    OfferManagedSchema,
    OfferPublicListSchema,
    OfferPublicSchema,
    OfferUpdateSchema,
    RedemptionCreateSchema,
    RedemptionListArgs,
    RedemptionListSchema,
    RedemptionSchema,
    SettlementArgs,
)

blp = Blueprint("coupons", __name__, description="Offers, coupons (QR) and redemption at checkout")

REQUIRED_IDEMPOTENCY_KEY = {**IDEMPOTENCY_KEY_PARAMETER, "required": True}
MANAGERS = ("operator", "merchant_admin")
MERCHANT_SIDE = ("merchant_staff", "merchant_admin")


def idempotency_key_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse a point-moving POST without Idempotency-Key: a retried claim must not claim twice."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not request.headers.get(HEADER):
            raise AppError("idempotency_key_required", "Send an Idempotency-Key header with this request.",
                           "请在请求中附带 Idempotency-Key 头。", 400)
        return view(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------------------
# Citizens: offers and coupons

@blp.get("/offers")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, OfferPublicListSchema)
@citizen_required
@blp.arguments(OfferListArgs, location="query")
def list_offers(args: dict[str, Any]) -> dict[str, Any]:
    """Live offers that can be claimed now; rural-revitalisation (乡村振兴) offers first."""
    return service.list_offers(args["cursor"], args["limit"], category=args["category"], district=args["district"],
                               merchant_id=args["merchant"])


@blp.get("/offers/<id:offer_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, OfferPublicSchema)
@citizen_required
def get_offer(offer_id: int) -> dict[str, Any]:
    """One live offer."""
    return service.get_offer(offer_id)


@blp.post("/offers/<id:offer_id>/claim")
@blp.doc(security=BEARER_SECURITY, parameters=[REQUIRED_IDEMPOTENCY_KEY])
@citizen_required
@idempotency_key_required
@idempotent
@blp.response(201, ClaimSchema)
def claim_offer(offer_id: int) -> dict[str, Any]:
    """Claim an offer. A coupon or voucher: the points are held (not spent) until it is redeemed,
    cancelled or expires. An honour (荣誉兑换): the points are spent at once and the honour granted.

    409: out_of_stock, claim_limit_reached, insufficient_points, offer_not_available, honour_already_held.
    """
    return service.claim_offer(g.citizen_id, offer_id)


@blp.get("/me/coupons")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, CouponListSchema)
@citizen_required
@blp.arguments(CouponListArgs, location="query")
def list_my_coupons(args: dict[str, Any]) -> dict[str, Any]:
    """My coupons, newest first."""
    return service.my_coupons(g.citizen_id, args["cursor"], args["limit"], args["status"])


@blp.get("/me/coupons/<id:coupon_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, CouponSchema)
@citizen_required
def get_my_coupon(coupon_id: int) -> dict[str, Any]:
    """One of my coupons."""
    return service.my_coupon(g.citizen_id, coupon_id)


@blp.post("/me/coupons/<id:coupon_id>/cancel")
@blp.doc(security=BEARER_SECURITY, parameters=[IDEMPOTENCY_KEY_PARAMETER])
@citizen_required
@idempotent
@blp.response(200, CouponSchema)
def cancel_my_coupon(coupon_id: int) -> dict[str, Any]:
    """Cancel an unused coupon: the held points come back at once."""
    return service.cancel_coupon(g.citizen_id, coupon_id)


@blp.get("/me/coupons/<id:coupon_id>/qr")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, CouponQrSchema)
@citizen_required
def coupon_qr(coupon_id: int) -> dict[str, Any]:
    """A fresh QR code (PNG data URI) and 8-digit short code, both valid for 60 seconds: ask again to rotate."""
    coupon = service.coupon_for_qr(g.citizen_id, coupon_id)
    issued = tokens.issue(coupon.id, coupon.merchant_id)
    png = segno.make(issued.token, error="m", micro=False).png_data_uri(scale=6, border=4)
    return {"token": issued.token, "short_code": issued.short_code, "issued_at": issued.issued_at,
            "expires_at": issued.expires_at, "qr_png": png}


# ---------------------------------------------------------------------------------------------
# Operators and merchant admins: publishing offers

@blp.post("/merchant/offers")
@blp.doc(security=BEARER_SECURITY)
@role_required(*MANAGERS)
@blp.arguments(OfferCreateSchema)
@blp.response(201, OfferManagedSchema)
def create_offer(body: dict[str, Any]) -> Any:
    """Create an offer in draft (operators: for `merchant_id`; merchant admins: for their merchant)."""
    return service.create_offer(g.actor, body)


@blp.get("/merchant/offers")
@blp.doc(security=BEARER_SECURITY)
@role_required(*MANAGERS)
@blp.arguments(OfferManagedListArgs, location="query")
@blp.response(200, OfferManagedListSchema)
def list_managed_offers(args: dict[str, Any]) -> dict[str, Any]:
    """Offers I manage, newest first (operators: all, or one merchant's)."""
    return service.list_managed_offers(g.actor, args["cursor"], args["limit"], args["merchant_id"], args["status"])


@blp.get("/merchant/offers/<id:offer_id>")
@blp.doc(security=BEARER_SECURITY)
@role_required(*MANAGERS)
@blp.response(200, OfferManagedSchema)
def get_managed_offer(offer_id: int) -> Any:
    """An offer I manage."""
    return service.managed_offer(g.actor, offer_id)


@blp.patch("/merchant/offers/<id:offer_id>")
@blp.doc(security=BEARER_SECURITY)
@role_required(*MANAGERS)
@blp.arguments(OfferUpdateSchema)
@blp.response(200, OfferManagedSchema)
def update_offer(body: dict[str, Any], offer_id: int) -> Any:
    """Edit a draft, retitle a published offer, publish (live), pause or resume it."""
    return service.update_offer(g.actor, offer_id, body)


# ---------------------------------------------------------------------------------------------
# Merchant staff: redemption at checkout

@blp.post("/merchant/redemptions")
@blp.doc(security=BEARER_SECURITY, parameters=[REQUIRED_IDEMPOTENCY_KEY])
@role_required(*MERCHANT_SIDE)
@idempotency_key_required
@idempotent
@blp.arguments(RedemptionCreateSchema)
@blp.response(201, RedemptionSchema)
def redeem(body: dict[str, Any]) -> dict[str, Any]:
    """Redeem the coupon whose QR token was scanned (or whose short code was typed) at one of my stores.

    Errors: 400 invalid_coupon_token; 403 wrong_merchant, store_not_allowed; 409 token_expired,
    coupon_already_used, coupon_expired, coupon_cancelled, coupon_not_yet_valid.
    """
    return redemptions.redeem(g.actor, body["store_id"], token=body.get("token"), short_code=body.get("short_code"))


@blp.get("/merchant/redemptions")
@blp.doc(security=BEARER_SECURITY)
@role_required(*MERCHANT_SIDE)
@blp.arguments(RedemptionListArgs, location="query")
@blp.response(200, RedemptionListSchema)
def list_redemptions(args: dict[str, Any]) -> dict[str, Any]:
    """My merchant's redemptions, newest first (`date`: an Asia/Shanghai day)."""
    return redemptions.list_redemptions(g.actor, args["cursor"], args["limit"], args["store"], args["date"])


@blp.post("/merchant/redemptions/<id:redemption_id>/undo")
@blp.doc(security=BEARER_SECURITY, parameters=[IDEMPOTENCY_KEY_PARAMETER])
@role_required("merchant_admin")
@idempotent
@blp.response(200, RedemptionSchema)
def undo_redemption(redemption_id: int) -> dict[str, Any]:
    """Undo a mistaken redemption within 30 minutes (merchant admin; audited): points back, coupon usable."""
    redemptions.undo_redemption(g.actor, redemption_id)
    return redemptions.redemption_for_merchant(g.actor, redemption_id)


@blp.get("/merchant/settlement")
@blp.doc(security=BEARER_SECURITY)
@role_required("merchant_admin")
@blp.arguments(SettlementArgs, location="query")
@blp.response(200, content_type="text/csv",
              description="CSV: one row per redemption (+points) and per undo (-points) in the month, then totals.")
def settlement(args: dict[str, Any]) -> Response:
    """The month's reconciliation CSV (Asia/Shanghai month)."""
    body = redemptions.settlement_csv(g.actor, args["month"])
    response = current_app.response_class(body, status=200, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="settlement-{args["month"]}.csv"'
    return response
