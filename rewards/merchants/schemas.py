"""Request and response bodies for merchants, stores, merchant staff and staff invitations."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from app.accounts.districts import DISTRICTS
from app.pagination import CursorArgs
from rewards.merchants.models import MERCHANT_ROLES, MERCHANT_STATUSES
from rewards.merchants.service import STORE_STATUSES

_NAME = validate.Length(min=1, max=128)
_ID = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1))
_DISTRICT_CODES = [d.code for d in DISTRICTS]


class MerchantSchema(Schema):
    id = fields.Integer(dump_only=True)
    name_zh = fields.String(dump_only=True, metadata={"example": "绿色咖啡"})
    name_en = fields.String(dump_only=True, metadata={"example": "Green Café"})
    status = fields.String(dump_only=True, metadata={"enum": list(MERCHANT_STATUSES)})
    created_at = fields.DateTime(dump_only=True)


class MerchantCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    name_zh = fields.String(required=True, validate=_NAME)
    name_en = fields.String(required=True, validate=_NAME)


class MerchantUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    name_zh = fields.String(validate=_NAME)
    name_en = fields.String(validate=_NAME)
    status = fields.String(validate=validate.OneOf(MERCHANT_STATUSES),
                           metadata={"description": "suspended: its staff are refused at once."})


class MerchantListArgs(CursorArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(MERCHANT_STATUSES))


class MerchantPageSchema(Schema):
    items = fields.List(fields.Nested(MerchantSchema), dump_only=True)
    next_cursor = fields.String(allow_none=True, required=True)


class MerchantStoreSchema(Schema):
    id = fields.Integer(dump_only=True)
    merchant_id = fields.Integer(dump_only=True)
    name = fields.String(dump_only=True)
    district = fields.String(dump_only=True, metadata={"enum": _DISTRICT_CODES})
    address = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": list(STORE_STATUSES)})
    created_at = fields.DateTime(dump_only=True)


class MerchantStoreCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=_NAME)
    district = fields.String(required=True, validate=validate.OneOf(_DISTRICT_CODES))
    address = fields.String(required=True, validate=validate.Length(min=1, max=255))


class MerchantStoreUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(validate=_NAME)
    district = fields.String(validate=validate.OneOf(_DISTRICT_CODES))
    address = fields.String(validate=validate.Length(min=1, max=255))
    status = fields.String(validate=validate.OneOf(STORE_STATUSES))


class MerchantStoreListSchema(Schema):
    items = fields.List(fields.Nested(MerchantStoreSchema), dump_only=True)


class MerchantStaffSchema(Schema):
    id = fields.Integer(dump_only=True)
    merchant_id = fields.Integer(dump_only=True)
    role = fields.String(dump_only=True, metadata={"enum": list(MERCHANT_ROLES)})
    label = fields.String(dump_only=True, allow_none=True)
    status = fields.String(dump_only=True, metadata={"enum": ["active", "removed"]})
    store_ids = fields.List(fields.Integer(), dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    removed_at = fields.DateTime(dump_only=True, allow_none=True)


class MerchantStaffListArgs(CursorArgs):
    status = fields.String(load_default="active", validate=validate.OneOf(["active", "removed"]))


class MerchantStaffPageSchema(Schema):
    items = fields.List(fields.Nested(MerchantStaffSchema), dump_only=True)
    next_cursor = fields.String(allow_none=True, required=True)


class MerchantStaffUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    role = fields.String(validate=validate.OneOf(MERCHANT_ROLES))
    store_ids = fields.List(_ID, validate=validate.Length(max=200))
    label = fields.String(allow_none=True, validate=validate.Length(max=64))


class MerchantInvitationCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    role = fields.String(load_default="merchant_staff", validate=validate.OneOf(MERCHANT_ROLES))
    store_ids = fields.List(_ID, required=True, validate=validate.Length(max=200),
                            metadata={"description": "The stores the new staff member may act at."})
    label = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=64),
                          metadata={"description": "What you call this person or till, e.g. 收银台2."})


class MerchantInvitationSchema(Schema):
    code = fields.String(dump_only=True, metadata={"description": "10 characters the new staff member types in "
                                                   "the mini-app; one use, 10 minutes."})
    expires_at = fields.DateTime(dump_only=True)


class MerchantInvitationAcceptSchema(Schema):
    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=validate.Length(min=4, max=32),
                         metadata={"description": "The invitation code (case, spaces and dashes ignored)."})


class MerchantSessionSchema(Schema):
    access_token = fields.String(dump_only=True)
    token_type = fields.String(dump_only=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(dump_only=True)
    staff_id = fields.Integer(dump_only=True)
    merchant_id = fields.Integer(dump_only=True)
    role = fields.String(dump_only=True, metadata={"enum": list(MERCHANT_ROLES)})
    store_ids = fields.List(fields.Integer(), dump_only=True)


class MerchantMeSchema(Schema):
    staff = fields.Nested(MerchantStaffSchema, dump_only=True)
    merchant = fields.Nested(MerchantSchema, dump_only=True)
    stores = fields.List(fields.Nested(MerchantStoreSchema), dump_only=True,
                         metadata={"description": "The open stores this staff member may act at."})
