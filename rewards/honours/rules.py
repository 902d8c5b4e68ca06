"""The badge rule types: a small closed set with validated parameters, so badges are data (YAML rows)
and nobody can put code in them. Each rule turns a citizen's stats into progress (current/target);
the badge is earned when current reaches target. Evaluation and /me/honours share this one function.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

SCENARIO_CODE = validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass
class CitizenStats:
    """What rules read: credited events only (status 'credited'), days are Asia/Shanghai days."""

    events: int = 0
    grams: int = 0
    by_scenario: dict[str, tuple[int, int]] = field(default_factory=dict)  # code -> (events, grams)
    longest_streak: int = 0
    current_streak: int = 0  # the run of active days ending today or yesterday

    def scenario_events(self, code: str | None) -> int:
        return self.events if code is None else self.by_scenario.get(code, (0, 0))[0]

    def scenario_grams(self, code: str | None) -> int:
        return self.grams if code is None else self.by_scenario.get(code, (0, 0))[1]


@dataclass(frozen=True)
class Progress:
    current: int
    target: int
    unit: str  # events | grams | days

    @property
    def reached(self) -> bool:
        return self.current >= self.target


class _Params(Schema):
    class Meta:
        unknown = RAISE


class FirstEventParams(_Params):
    """The first credited event, in one scenario or (without `scenario`) at all."""

    scenario = fields.String(validate=SCENARIO_CODE)


class EventCountParams(_Params):
    scenario = fields.String(validate=SCENARIO_CODE)
    count = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1_000_000))


class TotalGramsParams(_Params):
    scenario = fields.String(validate=SCENARIO_CODE)
    grams = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10**12))


class StreakDaysParams(_Params):
    days = fields.Integer(required=True, strict=True, validate=validate.Range(min=2, max=3660))


class GrantedParams(_Params):
    """Never earned by behaviour: granted by an honour offer (荣誉兑换) through grant_honour."""


RULE_PARAMS: dict[str, type[Schema]] = {
    "first_event": FirstEventParams,
    "event_count": EventCountParams,
    "total_grams": TotalGramsParams,
    "streak_days": StreakDaysParams,
    "granted": GrantedParams,
}


def validate_rule(rule_type: str, params: Any) -> dict[str, Any]:
    """The params, checked for this rule type; raises ValidationError naming what is wrong."""
    schema = RULE_PARAMS.get(rule_type)
    if schema is None:
        raise ValidationError(f"unknown rule type {rule_type!r}; one of {sorted(RULE_PARAMS)}", "type")
    if not isinstance(params, dict):
        raise ValidationError("rule parameters must be a mapping", "params")
    return schema().load(params)


def progress(rule_type: str, params: dict[str, Any], stats: CitizenStats) -> Progress | None:
    """Progress toward a badge; None for badges behaviour cannot earn (granted ones)."""
    scenario = params.get("scenario")
    if rule_type == "first_event":
        return Progress(min(stats.scenario_events(scenario), 1), 1, "events")
    if rule_type == "event_count":
        return Progress(stats.scenario_events(scenario), int(params["count"]), "events")
    if rule_type == "total_grams":
        return Progress(stats.scenario_grams(scenario), int(params["grams"]), "grams")
    if rule_type == "streak_days":
        # Earned on the longest run ever; shown as the run going on now (what the citizen can extend).
        target = int(params["days"])
        if stats.longest_streak >= target:
            return Progress(stats.longest_streak, target, "days")
        return Progress(stats.current_streak, target, "days")
    return None
