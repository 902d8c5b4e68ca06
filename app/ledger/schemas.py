"""Schemas for the personal carbon account and the ledger (component names start with CarbonAccount/Ledger)."""
from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema


class CarbonAccountPointsSchema(Schema):
    available = fields.Integer(required=True, metadata={"description": "points that can be spent now"})
    held = fields.Integer(required=True, metadata={"description": "points reserved by claimed, unredeemed coupons"})
    earned_total = fields.Integer(required=True)
    spent_total = fields.Integer(required=True, metadata={"description": "redeemed, expired or reversed"})
    debt = fields.Integer(
        required=True,
        metadata={"description": "points owed after a fraudulent credit was reversed; future earnings pay it first"},
    )


class CarbonAccountExpiringSchema(Schema):
    points = fields.Integer(required=True, metadata={"description": "free points that expire in the next 30 days"})
    expires_on = fields.Date(
        required=True, allow_none=True, metadata={"description": "the first of those days (Asia/Shanghai), or null"}
    )


class CarbonAccountGramsSchema(Schema):
    today = fields.Integer(required=True)
    month = fields.Integer(required=True)
    year = fields.Integer(required=True)
    all_time = fields.Integer(required=True)


class CarbonAccountNameSchema(Schema):
    zh = fields.String()
    en = fields.String()


class CarbonAccountScenarioSchema(Schema):
    scenario_code = fields.String(required=True)
    name = fields.Nested(CarbonAccountNameSchema, required=True)
    grams = fields.Integer(required=True)
    points = fields.Integer(required=True)


class CarbonAccountDaySchema(Schema):
    date = fields.Date(required=True, metadata={"description": "an Asia/Shanghai calendar day"})
    grams = fields.Integer(required=True)
    points = fields.Integer(required=True)


class CarbonAccountEquivalentSourceSchema(Schema):
    grams_per_unit = fields.Integer(required=True)
    source = fields.String(required=True)


class CarbonAccountEquivalentsSchema(Schema):
    trees = fields.String(required=True, metadata={"description": "tree-years, one decimal, e.g. \"1.2\""})
    car_km = fields.String(required=True, metadata={"description": "petrol car-km, one decimal"})
    sources = fields.Dict(keys=fields.String(), values=fields.Nested(CarbonAccountEquivalentSourceSchema))


class CarbonAccountSchema(Schema):
    points = fields.Nested(CarbonAccountPointsSchema, required=True)
    expiring_soon = fields.Nested(CarbonAccountExpiringSchema, required=True)
    co2e_grams = fields.Nested(CarbonAccountGramsSchema, required=True)
    by_scenario = fields.List(fields.Nested(CarbonAccountScenarioSchema), required=True)
    daily = fields.List(
        fields.Nested(CarbonAccountDaySchema),
        required=True,
        metadata={"description": "the last 30 Asia/Shanghai days, oldest first"},
    )
    equivalents = fields.Nested(CarbonAccountEquivalentsSchema, required=True)


class LedgerEntrySchema(Schema):
    id = fields.UUID(required=True)
    kind = fields.String(
        required=True, metadata={"description": "earn, hold, expire, reverse, debt, repay, adjust, ..."}
    )
    amount = fields.Integer(required=True, metadata={"description": "signed: positive when the citizen receives"})
    direction = fields.String(required=True, metadata={"description": "in | out"})
    created_at = fields.DateTime(required=True)
    status = fields.String(required=True, metadata={"description": "posted | pending | voided"})
    timeout_at = fields.DateTime(allow_none=True, metadata={"description": "when a pending hold times out"})
    explanation = fields.Dict(
        required=True,
        metadata={"description": "scenario, methodology version, activity, formula, factors, caps, campaign"},
    )


class LedgerPageSchema(Schema):
    items = fields.List(fields.Nested(LedgerEntrySchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class LedgerReversalCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    event_id = fields.Integer(
        validate=validate.Range(min=1, max=2**63 - 1), metadata={"description": "the behaviour event credited"}
    )
    transfer_id = fields.UUID(metadata={"description": "or the ledger transfer that credited the points"})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))

    @validates_schema
    def _one_target(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("event_id" in data) == ("transfer_id" in data):
            raise ValidationError("Give exactly one of event_id and transfer_id.", field_name="_schema")


class LedgerReversalSchema(Schema):
    transfer_id = fields.UUID(dump_only=True, metadata={"description": "the credit reversed"})
    citizen_id = fields.Integer(dump_only=True)
    amount = fields.Integer(dump_only=True)
    recovered = fields.Integer(dump_only=True, metadata={"description": "taken back from the citizen's points"})
    debt = fields.Integer(dump_only=True, metadata={"description": "already spent: owed, paid from future earnings"})
    reason = fields.String(dump_only=True)
    actor = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
