"""Request and response bodies for the partner registry and account bindings."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from app.partners.service import ACCOUNT_REF_MAX


class PartnerPublicSchema(Schema):
    code = fields.String(dump_only=True)
    name_zh = fields.String(dump_only=True)
    name_en = fields.String(dump_only=True)
    kind = fields.String(dump_only=True, metadata={"enum": ["metro", "bus", "bikeshare", "recycling", "einvoice"]})


class PartnerPublicListSchema(Schema):
    items = fields.List(fields.Nested(PartnerPublicSchema), dump_only=True)


class BindingCodeRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    partner_code = fields.String(required=True, validate=validate.Length(min=2, max=64),
                                 metadata={"example": "shmetro"})


class BindingCodeSchema(Schema):
    code = fields.String(dump_only=True, metadata={"description": "8 characters to type into the partner's app; "
                                                   "one use, 10 minutes."})
    expires_at = fields.DateTime(dump_only=True)


class BindingSchema(Schema):
    id = fields.Integer(dump_only=True)
    partner_code = fields.String(dump_only=True)
    partner_name_zh = fields.String(dump_only=True)
    partner_name_en = fields.String(dump_only=True)
    partner_kind = fields.String(dump_only=True)
    account_ref_masked = fields.String(dump_only=True, metadata={"example": "****5678"})
    bound_at = fields.DateTime(dump_only=True)


class BindingListSchema(Schema):
    items = fields.List(fields.Nested(BindingSchema), dump_only=True)


class PartnerBindingConfirmSchema(Schema):
    class Meta:
        unknown = RAISE

    binding_code = fields.String(required=True, validate=validate.Length(min=4, max=32),
                                 metadata={"description": "The code the citizen typed (case and spaces ignored)."})
    account_ref = fields.String(required=True, validate=validate.Length(min=1, max=ACCOUNT_REF_MAX),
                                metadata={"description": "Your own pseudonymous reference for this account; "
                                          "your events name it. Never a phone number or ID number."})


class PartnerBindingConfirmedSchema(Schema):
    status = fields.String(dump_only=True, metadata={"example": "bound"})
    bound_at = fields.DateTime(dump_only=True)


class PartnerUnbindSchema(Schema):
    class Meta:
        unknown = RAISE

    account_ref = fields.String(required=True, validate=validate.Length(min=1, max=ACCOUNT_REF_MAX))
