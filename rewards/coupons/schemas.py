"""Request and response bodies for offers, coupons and redemptions."""
from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.accounts.districts import DISTRICTS
from app.pagination import CursorArgs
from rewards.coupons.models import CATEGORIES, COUPON_STATUSES, OFFER_KINDS, OFFER_STATUSES
from rewards.honours.schemas import HonourEarnedBadgeSchema

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_DISTRICT = validate.OneOf([d.code for d in DISTRICTS])
# Bounded so that "valid_days after the claim" and Asia/Shanghai arithmetic never overflow.
_WHEN = validate.Range(min=datetime(2000, 1, 1, tzinfo=UTC), max=datetime(2100, 1, 1, tzinfo=UTC))
_ID = validate.Range(min=1, max=_INT64_MAX)


def _when(description: str, **kwargs: Any) -> fields.AwareDateTime:
    return fields.AwareDateTime(validate=_WHEN, metadata={"description": description}, **kwargs)


# ---------------------------------------------------------------------------------------------
# Offers

class OfferFieldsSchema(Schema):
    """The fields an operator or merchant admin sets on an offer."""

    class Meta:
        unknown = RAISE

    kind = fields.String(required=True, validate=validate.OneOf(OFFER_KINDS),
                         metadata={"description": "coupon, voucher (兑换券), or honour (荣誉兑换: operators only, "
                                                  "no merchant_id, a badge_code, no use window, "
                                                  "per_citizen_limit 1)."})
    badge_code = fields.String(allow_none=True, load_default=None, validate=validate.Length(min=1, max=64),
                               metadata={"description": "Honour offers: the badge granted (GET /me/honours codes; "
                                                        "only badges whose rule is `granted`)."})
    title_zh = fields.String(required=True, validate=validate.Length(min=1, max=128))
    title_en = fields.String(required=True, validate=validate.Length(min=1, max=128))
    terms_zh = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    terms_en = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    points_price = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10**9))
    total_stock = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10**8))
    per_citizen_limit = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    claim_starts_at = _when("When claiming opens.", required=True)
    claim_ends_at = _when("When claiming closes (exclusive).", required=True)
    use_starts_at = _when("Coupons usable from (fixed window; default: when claimed).", allow_none=True,
                          load_default=None)
    use_ends_at = _when("Coupons usable until (fixed window). Give this or valid_days.", allow_none=True,
                        load_default=None)
    valid_days = fields.Integer(strict=True, allow_none=True, load_default=None,
                                validate=validate.Range(min=1, max=3660),
                                metadata={"description": "Coupons usable for this many days after the claim."})
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES),
                             metadata={"description": "衣 食 住 行 用"})
    districts = fields.List(fields.String(validate=_DISTRICT), load_default=list, validate=validate.Length(max=16),
                            metadata={"description": "District codes (GET /districts); empty: citywide."})
    points_budget = fields.Integer(strict=True, allow_none=True, load_default=None,
                                   validate=validate.Range(min=1, max=10**15),
                                   metadata={"description": "Most points all claims together may hold; "
                                                            "null: bounded by the stock only."})
    rural_revitalisation = fields.Boolean(load_default=False,
                                          metadata={"description": "乡村振兴: listed first (R6.5)."})


class OfferCreateSchema(OfferFieldsSchema):
    merchant_id = fields.Integer(strict=True, validate=_ID,
                                 metadata={"description": "Required for operators; a merchant admin's own merchant "
                                                          "is implied."})


class OfferUpdateSchema(Schema):
    """Any of the offer's fields (a draft), only titles and terms once published, and/or the status."""

    class Meta:
        unknown = RAISE

    kind = fields.String(validate=validate.OneOf(OFFER_KINDS))
    badge_code = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    title_zh = fields.String(validate=validate.Length(min=1, max=128))
    title_en = fields.String(validate=validate.Length(min=1, max=128))
    terms_zh = fields.String(validate=validate.Length(min=1, max=4000))
    terms_en = fields.String(validate=validate.Length(min=1, max=4000))
    points_price = fields.Integer(strict=True, validate=validate.Range(min=1, max=10**9))
    total_stock = fields.Integer(strict=True, validate=validate.Range(min=0, max=10**8))
    per_citizen_limit = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000))
    claim_starts_at = _when("When claiming opens.")
    claim_ends_at = _when("When claiming closes.")
    use_starts_at = _when("Coupons usable from.", allow_none=True)
    use_ends_at = _when("Coupons usable until.", allow_none=True)
    valid_days = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=3660))
    category = fields.String(validate=validate.OneOf(CATEGORIES))
    districts = fields.List(fields.String(validate=_DISTRICT), validate=validate.Length(max=16))
    points_budget = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=10**15))
    rural_revitalisation = fields.Boolean()
    status = fields.String(validate=validate.OneOf(OFFER_STATUSES),
                           metadata={"description": "draft -> live -> paused -> live; pausing stops claims at once."})


class OfferSchema(Schema):
    id = fields.Integer(dump_only=True)
    merchant_id = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "null: an honour offer"})
    kind = fields.String(dump_only=True)
    badge_code = fields.String(dump_only=True, allow_none=True, metadata={"description": "Honour offers only."})
    title_zh = fields.String(dump_only=True)
    title_en = fields.String(dump_only=True)
    terms_zh = fields.String(dump_only=True)
    terms_en = fields.String(dump_only=True)
    points_price = fields.Integer(dump_only=True)
    total_stock = fields.Integer(dump_only=True)
    remaining = fields.Integer(dump_only=True)
    per_citizen_limit = fields.Integer(dump_only=True)
    claim_starts_at = fields.DateTime(dump_only=True)
    claim_ends_at = fields.DateTime(dump_only=True)
    use_starts_at = fields.DateTime(dump_only=True, allow_none=True)
    use_ends_at = fields.DateTime(dump_only=True, allow_none=True)
    valid_days = fields.Integer(dump_only=True, allow_none=True)
    category = fields.String(dump_only=True)
    districts = fields.List(fields.String(), dump_only=True)
    rural_revitalisation = fields.Boolean(dump_only=True)
    status = fields.String(dump_only=True)


class OfferManagedSchema(OfferSchema):
    """What operators and merchant admins see: the budget and who created it as well."""

    points_budget = fields.Integer(dump_only=True, allow_none=True)
    budget_used = fields.Integer(dump_only=True)
    created_by = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True, allow_none=True)


class OfferManagedListSchema(Schema):
    items = fields.List(fields.Nested(OfferManagedSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)


class OfferManagedListArgs(CursorArgs):
    merchant_id = fields.Integer(load_default=None, validate=_ID, metadata={"description": "Operators only."})
    status = fields.String(load_default=None, validate=validate.OneOf(OFFER_STATUSES))


class OfferPublicSchema(OfferSchema):
    merchant_name_zh = fields.String(dump_only=True, allow_none=True)
    merchant_name_en = fields.String(dump_only=True, allow_none=True)
    claimable = fields.Boolean(dump_only=True, metadata={"description": "Live, in its claim window, in stock."})


class OfferPublicListSchema(Schema):
    items = fields.List(fields.Nested(OfferPublicSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)


class OfferListArgs(CursorArgs):
    category = fields.String(load_default=None, validate=validate.OneOf(CATEGORIES))
    district = fields.String(load_default=None, validate=_DISTRICT)
    merchant = fields.Integer(load_default=None, validate=_ID)


# ---------------------------------------------------------------------------------------------
# Coupons

class CouponSchema(Schema):
    id = fields.Integer(dump_only=True)
    offer_id = fields.Integer(dump_only=True)
    kind = fields.String(dump_only=True)
    title_zh = fields.String(dump_only=True)
    title_en = fields.String(dump_only=True)
    terms_zh = fields.String(dump_only=True)
    terms_en = fields.String(dump_only=True)
    merchant_id = fields.Integer(dump_only=True)
    merchant_name_zh = fields.String(dump_only=True)
    merchant_name_en = fields.String(dump_only=True)
    points = fields.Integer(dump_only=True)
    status = fields.String(dump_only=True, metadata={"description": "issued, redeemed, cancelled or expired."})
    valid_from = fields.DateTime(dump_only=True)
    expires_at = fields.DateTime(dump_only=True)
    claimed_at = fields.DateTime(dump_only=True)
    resolved_at = fields.DateTime(dump_only=True, allow_none=True)


class ClaimSchema(CouponSchema):
    """What a claim gives: a coupon (kind coupon or voucher, as GET /me/coupons/{id} shows it), or an
    honour exchanged at once (kind honour: `id` is the exchange's, status `granted`, no merchant, no
    validity, `honour` the badge now held, listed in GET /me/honours)."""

    merchant_id = fields.Integer(dump_only=True, allow_none=True)
    merchant_name_zh = fields.String(dump_only=True, allow_none=True)
    merchant_name_en = fields.String(dump_only=True, allow_none=True)
    status = fields.String(dump_only=True, metadata={"description": "issued (a coupon) or granted (an honour)."})
    valid_from = fields.DateTime(dump_only=True, allow_none=True)
    expires_at = fields.DateTime(dump_only=True, allow_none=True)
    honour = fields.Nested(HonourEarnedBadgeSchema, dump_only=True, allow_none=True)


class CouponListSchema(Schema):
    items = fields.List(fields.Nested(CouponSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)


class CouponListArgs(CursorArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(COUPON_STATUSES))


class CouponQrSchema(Schema):
    token = fields.String(dump_only=True, metadata={"description": "What the QR code encodes; fresh 60 s."})
    short_code = fields.String(dump_only=True, metadata={"description": "8 digits to type when a scan fails; 60 s."})
    issued_at = fields.DateTime(dump_only=True)
    expires_at = fields.DateTime(dump_only=True, metadata={"description": "Ask again before this (rotate)."})
    qr_png = fields.String(dump_only=True, metadata={"description": "data:image/png;base64,... of the token."})


# ---------------------------------------------------------------------------------------------
# Redemptions

class RedemptionCreateSchema(Schema):
    """The scanned token or the typed short code (exactly one), and the store where it happens."""

    class Meta:
        unknown = RAISE

    store_id = fields.Integer(required=True, strict=True, validate=_ID)
    token = fields.String(validate=validate.Length(min=1, max=200))
    short_code = fields.String(validate=validate.Regexp(r"^[0-9]{8}$"),
                               metadata={"description": "8 digits."})

    @validates_schema
    def _one_code(self, data: dict[str, Any], **_: Any) -> None:
        if ("token" in data) == ("short_code" in data):
            raise ValidationError("Send either token or short_code.", "_schema")


class RedemptionSchema(Schema):
    id = fields.Integer(dump_only=True)
    coupon_id = fields.Integer(dump_only=True)
    offer_id = fields.Integer(dump_only=True)
    title_zh = fields.String(dump_only=True)
    title_en = fields.String(dump_only=True)
    store_id = fields.Integer(dump_only=True)
    staff_id = fields.Integer(dump_only=True)
    points = fields.Integer(dump_only=True)
    redeemed_at = fields.DateTime(dump_only=True)
    undone_at = fields.DateTime(dump_only=True, allow_none=True)
    undone_by_staff_id = fields.Integer(dump_only=True, allow_none=True)


class RedemptionListSchema(Schema):
    items = fields.List(fields.Nested(RedemptionSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)


class RedemptionListArgs(CursorArgs):
    store = fields.Integer(load_default=None, validate=_ID)
    date = fields.Date(load_default=None, validate=validate.Range(min=date(2000, 1, 1), max=date(2099, 12, 31)),
                       metadata={"description": "An Asia/Shanghai calendar day, YYYY-MM-DD."})


class SettlementArgs(Schema):
    class Meta:
        unknown = RAISE

    month = fields.String(required=True, validate=validate.Regexp(r"^20[0-9]{2}-(0[1-9]|1[0-2])$"),
                          metadata={"description": "YYYY-MM (Asia/Shanghai)."})
