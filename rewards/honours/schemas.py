"""Request and response bodies for honours, yearly reports and leaderboards (component names start
with Honour / Report / Leaderboard)."""
from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates

from app.accounts.districts import DISTRICTS
from app.ledger.schemas import CarbonAccountEquivalentsSchema
from app.pagination import MAX_LIMIT

# A run of 7+ digits looks like a phone or id number: personal data has no place on a public board.
_DIGIT_RUN = re.compile(r"\d{7,}")


class HonourTextSchema(Schema):
    zh = fields.String(dump_only=True)
    en = fields.String(dump_only=True)


class HonourProfileSchema(Schema):
    nickname = fields.String(dump_only=True, allow_none=True, metadata={"description": "null: not set"})
    display_name = fields.String(dump_only=True, metadata={"description": "the nickname, or 低碳市民"})
    leaderboard_opt_in = fields.Boolean(dump_only=True)


class HonourEarnedBadgeSchema(Schema):
    code = fields.String(dump_only=True)
    name = fields.Nested(HonourTextSchema, dump_only=True)
    description = fields.Nested(HonourTextSchema, dump_only=True)
    icon = fields.String(dump_only=True)
    awarded_at = fields.DateTime(dump_only=True)
    source = fields.String(dump_only=True, metadata={"description": "rule (earned) | offer (exchanged, 荣誉兑换)"})


class HonourNextBadgeSchema(Schema):
    code = fields.String(dump_only=True)
    name = fields.Nested(HonourTextSchema, dump_only=True)
    description = fields.Nested(HonourTextSchema, dump_only=True)
    icon = fields.String(dump_only=True)
    current = fields.Integer(dump_only=True)
    target = fields.Integer(dump_only=True)
    unit = fields.String(dump_only=True, metadata={"description": "events | grams | days"})


class HonourLevelSchema(Schema):
    code = fields.String(dump_only=True)
    name = fields.Nested(HonourTextSchema, dump_only=True)
    icon = fields.String(dump_only=True)
    threshold_grams = fields.Integer(dump_only=True)


class HonourNextLevelSchema(HonourLevelSchema):
    current = fields.Integer(dump_only=True, metadata={"description": "cumulative grams CO2e now"})
    target = fields.Integer(dump_only=True, metadata={"description": "grams CO2e the level needs"})


class HonourStreakSchema(Schema):
    current = fields.Integer(dump_only=True, metadata={"description": "consecutive days up to today or yesterday"})
    longest = fields.Integer(dump_only=True)


class HonoursSchema(Schema):
    co2e_grams = fields.Integer(dump_only=True, metadata={"description": "cumulative credited grams CO2e"})
    events = fields.Integer(dump_only=True)
    streak = fields.Nested(HonourStreakSchema, dump_only=True)
    earned = fields.List(fields.Nested(HonourEarnedBadgeSchema), dump_only=True)
    next = fields.List(fields.Nested(HonourNextBadgeSchema), dump_only=True, metadata={"description": "closest first"})
    level = fields.Nested(HonourLevelSchema, dump_only=True, allow_none=True)
    next_level = fields.Nested(HonourNextLevelSchema, dump_only=True, allow_none=True)
    profile = fields.Nested(HonourProfileSchema, dump_only=True)


# ---- yearly report ----


class ReportYearMonthSchema(Schema):
    month = fields.Integer(dump_only=True)
    grams = fields.Integer(dump_only=True)
    events = fields.Integer(dump_only=True)


class ReportScenarioSchema(Schema):
    scenario_code = fields.String(dump_only=True)
    name = fields.Nested(HonourTextSchema, dump_only=True)
    grams = fields.Integer(dump_only=True)
    events = fields.Integer(dump_only=True)
    months = fields.List(fields.Integer(), dump_only=True, metadata={"description": "grams in January … December"})


class ReportPointsSchema(Schema):
    earned = fields.Integer(dump_only=True)
    spent = fields.Integer(dump_only=True, metadata={"description": "redeemed, expired or reversed"})


class ReportBadgeSchema(Schema):
    code = fields.String(dump_only=True)
    name = fields.Nested(HonourTextSchema, dump_only=True)
    description = fields.Nested(HonourTextSchema, dump_only=True)
    icon = fields.String(dump_only=True)
    awarded_at = fields.DateTime(dump_only=True)


class ReportYearSchema(Schema):
    year = fields.Integer(dump_only=True)
    co2e_grams = fields.Integer(dump_only=True)
    events = fields.Integer(dump_only=True)
    active_days = fields.Integer(dump_only=True)
    points = fields.Nested(ReportPointsSchema, dump_only=True)
    by_scenario = fields.List(fields.Nested(ReportScenarioSchema), dump_only=True)
    by_month = fields.List(fields.Nested(ReportYearMonthSchema), dump_only=True)
    equivalents = fields.Nested(CarbonAccountEquivalentsSchema, dump_only=True)
    badges = fields.List(fields.Nested(ReportBadgeSchema), dump_only=True)
    year_level = fields.Nested(
        HonourLevelSchema, dump_only=True, allow_none=True, metadata={"description": "the level the year alone reaches"}
    )


# ---- leaderboards ----


class LeaderboardOptInSchema(Schema):
    """`{opt_in, nickname?}`: nickname null clears it (the board then shows 低碳市民)."""

    class Meta:
        unknown = RAISE

    opt_in = fields.Boolean(required=True)
    nickname = fields.String(allow_none=True, validate=validate.Length(min=1, max=20))

    @validates("nickname")
    def _plain(self, value: str | None, **_: Any) -> None:
        if value is None:
            return
        if not value.strip() or not value.isprintable():
            raise ValidationError("Use 1–20 visible characters.")
        if _DIGIT_RUN.search(value):
            raise ValidationError("A nickname may not contain a phone or id number.")

    @post_load
    def _strip(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data.get("nickname") is not None:
            data["nickname"] = data["nickname"].strip()
        return data


class LeaderboardProfileSchema(HonourProfileSchema):
    home_district = fields.String(dump_only=True, allow_none=True)


class LeaderboardArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    district = fields.String(
        load_default=None,
        validate=validate.OneOf([d.code for d in DISTRICTS]),
        metadata={"description": "a code from GET /districts; default: my home district"},
    )
    period = fields.String(load_default="month", validate=validate.OneOf(["month", "year"]))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_LIMIT))


class LeaderboardEntrySchema(Schema):
    rank = fields.Integer(dump_only=True, metadata={"description": "equal grams share a rank"})
    nickname = fields.String(dump_only=True)
    grams = fields.Integer(dump_only=True)
    is_me = fields.Boolean(dump_only=True)


class LeaderboardSchema(Schema):
    district = fields.String(dump_only=True)
    period = fields.String(dump_only=True)
    period_start = fields.Date(dump_only=True)
    period_end = fields.Date(dump_only=True)
    participants = fields.Integer(dump_only=True, metadata={"description": "opted-in citizens of the district"})
    items = fields.List(fields.Nested(LeaderboardEntrySchema), dump_only=True)
    me = fields.Nested(
        LeaderboardEntrySchema, dump_only=True, allow_none=True,
        metadata={"description": "my own rank when I opted in and live in this district"},
    )
