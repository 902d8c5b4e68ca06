"""Request and response bodies for campaigns: operators' full view, citizens' public one."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.accounts.districts import DISTRICTS
from app.pagination import CursorArgs
from rewards.campaigns.models import CAMPAIGN_STATUSES

_CODE = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{1,63}$", error="Lower-case letters, digits, _ and -, 2-64 long.")
_SCENARIO_CODE = validate.Regexp(r"^[a-z0-9][a-z0-9_]{0,63}$", error="Not a scenario code.")
_DISTRICT = validate.OneOf([d.code for d in DISTRICTS])
_MAX_BUDGET = 10**12
_MAX_BONUS = 100_000
_DECIMAL_TEXT = {"type": "string", "description": "A decimal as a string, e.g. \"2.00\"."}


class CampaignTitleSchema(Schema):
    class Meta:
        unknown = RAISE

    zh = fields.String(required=True, validate=validate.Length(min=1, max=100))
    en = fields.String(required=True, validate=validate.Length(min=1, max=200))


def _scenario_list() -> fields.List:
    return fields.List(
        fields.String(validate=_SCENARIO_CODE),
        allow_none=True,
        validate=validate.Length(min=1, max=50),
        metadata={"description": "Scenario codes from GET /scenarios; null or absent: every scenario."},
    )


def _district_list() -> fields.List:
    return fields.List(
        fields.String(validate=_DISTRICT),
        allow_none=True,
        validate=validate.Length(min=1, max=16),
        metadata={"description": "District codes from GET /districts; null or absent: every district."},
    )


def _multiplier_in_range(value: Decimal) -> None:
    """Not validate.Range: apispec would document its bounds as strings, which OpenAPI refuses."""
    if not Decimal(1) <= value <= Decimal(10):
        raise ValidationError("Must be between 1 and 10.")


def _multiplier() -> fields.Decimal:
    return fields.Decimal(
        places=2,
        validate=_multiplier_in_range,
        metadata={
            "description": "Points × this, 1 to 10, two decimals (a number or a decimal string); "
            "the extra is floor(base × (m − 1)).",
            "minimum": 1,
            "maximum": 10,
        },
    )


def _bonus() -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=_MAX_BONUS),
        metadata={"description": "Fixed extra points per credited event."},
    )


def _budget(required: bool = False) -> fields.Integer:
    return fields.Integer(
        required=required,
        strict=True,
        validate=validate.Range(min=1, max=_MAX_BUDGET),
        metadata={"description": "Extra points this campaign may give in all."},
    )


class CampaignCreateSchema(Schema):
    """A new campaign. Campaigns do not stack: each credited event gets the one campaign giving it most."""

    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=_CODE)
    title = fields.Nested(CampaignTitleSchema, required=True)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True, metadata={"description": "Exclusive."})
    scenario_codes = _scenario_list()
    districts = _district_list()
    multiplier = _multiplier()
    bonus_points = _bonus()
    budget_points = _budget(required=True)
    status = fields.String(
        validate=validate.OneOf(["draft", "live"]), metadata={"description": "draft (default) or live at once."}
    )

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        if data["ends_at"] <= data["starts_at"]:
            raise ValidationError("Must be after starts_at.", "ends_at")
        if data.get("multiplier", Decimal(1)) <= 1 and data.get("bonus_points", 0) <= 0:
            raise ValidationError("Set a multiplier above 1 or a bonus above 0.", "multiplier")


class CampaignUpdateSchema(Schema):
    """Status (pause takes effect at once), title and budget any time; the terms only while draft."""

    class Meta:
        unknown = RAISE

    title = fields.Nested(CampaignTitleSchema)
    status = fields.String(validate=validate.OneOf(CAMPAIGN_STATUSES))
    budget_points = _budget()
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()
    scenario_codes = _scenario_list()
    districts = _district_list()
    multiplier = _multiplier()
    bonus_points = _bonus()

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("Change at least one field.")


class CampaignSchema(Schema):
    """A campaign as operators see it."""

    id = fields.Integer(dump_only=True)
    code = fields.String(dump_only=True)
    title = fields.Nested(CampaignTitleSchema, dump_only=True)
    starts_at = fields.DateTime(dump_only=True)
    ends_at = fields.DateTime(dump_only=True)
    scenario_codes = fields.List(fields.String(), dump_only=True, allow_none=True)
    districts = fields.List(fields.String(), dump_only=True, allow_none=True)
    multiplier = fields.Decimal(places=2, as_string=True, dump_only=True, metadata=_DECIMAL_TEXT)
    bonus_points = fields.Integer(dump_only=True)
    budget_points = fields.Integer(dump_only=True)
    used_points = fields.Integer(dump_only=True)
    remaining_points = fields.Method("_remaining", dump_only=True, metadata={"type": "integer"})
    status = fields.String(dump_only=True)
    created_by = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)

    def _remaining(self, campaign: Any) -> int:
        return int(campaign.budget_points - campaign.used_points)


class CampaignPageSchema(Schema):
    items = fields.List(fields.Nested(CampaignSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)


class CampaignListArgs(CursorArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(CAMPAIGN_STATUSES))


class PublicCampaignSchema(Schema):
    """A live campaign as citizens see it (no budget figures)."""

    code = fields.String(dump_only=True)
    title = fields.Nested(CampaignTitleSchema, dump_only=True)
    starts_at = fields.DateTime(dump_only=True)
    ends_at = fields.DateTime(dump_only=True)
    scenario_codes = fields.List(fields.String(), dump_only=True, allow_none=True)
    districts = fields.List(fields.String(), dump_only=True, allow_none=True)
    multiplier = fields.Decimal(places=2, as_string=True, dump_only=True, metadata=_DECIMAL_TEXT)
    bonus_points = fields.Integer(dump_only=True)


class PublicCampaignPageSchema(Schema):
    items = fields.List(fields.Nested(PublicCampaignSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)
