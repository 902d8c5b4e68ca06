"""Request and response bodies for the citizen's account, consents and reference data."""
from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.accounts.districts import DISTRICTS

_DISTRICT = validate.OneOf([d.code for d in DISTRICTS])


class AccountMeSchema(Schema):
    id = fields.Integer(dump_only=True)
    home_district = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    phone = fields.String(dump_only=True, allow_none=True, metadata={"description": "Masked: 138****1234."})
    linked_providers = fields.List(fields.String(), dump_only=True)
    consents_required = fields.Boolean(dump_only=True)


class AccountMeUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    home_district = fields.String(
        allow_none=True, validate=_DISTRICT, metadata={"description": "A code from GET /districts, or null."}
    )


class AccountDistrictSchema(Schema):
    code = fields.String(dump_only=True)
    zh = fields.String(dump_only=True)
    en = fields.String(dump_only=True)
    admin_code = fields.String(dump_only=True, metadata={"description": "GB/T 2260 division code."})


class AccountDistrictListSchema(Schema):
    items = fields.List(fields.Nested(AccountDistrictSchema), dump_only=True)


class AccountLocalisedTextSchema(Schema):
    zh = fields.String(dump_only=True)
    en = fields.String(dump_only=True)


class AccountPrivacyTermsSchema(Schema):
    version = fields.String(dump_only=True)
    effective_from = fields.String(dump_only=True)
    title = fields.Nested(AccountLocalisedTextSchema, dump_only=True)
    text = fields.Nested(AccountLocalisedTextSchema, dump_only=True)


class AccountConsentSchema(Schema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(dump_only=True)
    scenario_code = fields.String(dump_only=True, allow_none=True)
    terms_version = fields.String(dump_only=True)
    granted_at = fields.DateTime(dump_only=True)
    withdrawn_at = fields.DateTime(dump_only=True, allow_none=True)
    active = fields.Function(lambda consent: consent.withdrawn_at is None, dump_only=True)


class AccountConsentListSchema(Schema):
    items = fields.List(fields.Nested(AccountConsentSchema), dump_only=True)


class AccountConsentGrantSchema(Schema):
    """`{kind: "privacy", terms_version}` or `{kind: "trajectory", scenario_code}`."""

    class Meta:
        unknown = RAISE

    kind = fields.String(required=True, validate=validate.OneOf(["privacy", "trajectory"]))
    terms_version = fields.String(validate=validate.Length(min=1, max=32))
    scenario_code = fields.String(validate=validate.Length(min=1, max=64))

    @validates_schema
    def _fields_for_kind(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("kind") == "privacy":
            if "terms_version" not in data:
                raise ValidationError("Required for a privacy consent.", "terms_version")
            if "scenario_code" in data:
                raise ValidationError("Only for a trajectory consent.", "scenario_code")
        elif data.get("kind") == "trajectory":
            if "scenario_code" not in data:
                raise ValidationError("Required for a trajectory consent.", "scenario_code")
            if "terms_version" in data:
                raise ValidationError("Only for a privacy consent.", "terms_version")
