"""Output schemas for the personal carbon account and the ledger (component names start with CarbonAccount/Ledger)."""
from __future__ import annotations

from marshmallow import Schema, fields


class CarbonAccountPointsSchema(Schema):
    available = fields.Integer(required=True, metadata={"description": "points that can be spent now"})
    held = fields.Integer(required=True, metadata={"description": "points reserved by claimed, unredeemed coupons"})
    earned_total = fields.Integer(required=True)
    spent_total = fields.Integer(required=True, metadata={"description": "redeemed, expired or reversed"})


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
    kind = fields.String(required=True, metadata={"description": "earn, hold, expire, reverse, adjust, ..."})
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
