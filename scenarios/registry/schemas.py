"""Request and response bodies of the methodology registry (the API and the console forms share them)."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from app.pagination import CursorArgs
from scenarios.definitions import CATEGORIES, DATA_SOURCES, METHODOLOGY_TYPES
from scenarios.registry.service import REVIEW_DECISIONS

STATUSES = ("provisional", "draft", "submitted", "returned", "approved", "filed", "retired")
_TEXT = validate.Length(min=1, max=500)
_LONG_TEXT = validate.Length(min=1, max=4000)
# Engine numbers are plain decimals: 10^15 is far beyond any factor, and a number like 1e999999 would
# otherwise be written out in full when stored.
_NUMBER_KEYS = ("value", "min", "max", "default")
_MAX_ADJUSTED, _MIN_EXPONENT = 15, -12


def _positive_decimal(maximum: int, description: str = "", **kwargs: Any) -> fields.Decimal:
    """A Decimal above 0, at most `maximum`, with at most 6 decimals (what the columns keep).

    Not validate.Range: apispec would document its bounds as strings, which OpenAPI refuses."""

    def in_range(value: Decimal) -> None:
        if not Decimal(0) < value <= maximum:
            raise ValidationError(f"Must be greater than 0 and at most {maximum}.")
        if value.as_tuple().exponent < -6:  # type: ignore[operator]  (finite: allow_nan=False)
            raise ValidationError("At most 6 decimal places.")

    metadata = {"minimum": 0, "exclusiveMinimum": True, "maximum": maximum}
    if description:
        metadata["description"] = description
    return fields.Decimal(allow_nan=False, validate=in_range, metadata=metadata, **kwargs)


class BilingualIn(Schema):
    class Meta:
        unknown = RAISE

    zh = fields.String(required=True, validate=_LONG_TEXT)
    en = fields.String(required=True, validate=_LONG_TEXT)


class CoBenefitFactorIn(Schema):
    class Meta:
        unknown = RAISE

    value = _positive_decimal(10**9, required=True)
    unit = fields.String(required=True, validate=validate.Length(min=1, max=32), metadata={"example": "g/km"})
    source = fields.String(required=True, validate=_TEXT)


class CoBenefitsIn(Schema):
    class Meta:
        unknown = RAISE

    nox = fields.Nested(CoBenefitFactorIn, allow_none=True, metadata={"description": "NOx avoided per unit"})
    pm25 = fields.Nested(CoBenefitFactorIn, allow_none=True, metadata={"description": "PM2.5 avoided per unit"})


class DocumentRefIn(Schema):
    class Meta:
        unknown = RAISE

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    reference = fields.String(required=True, validate=_TEXT,
                              metadata={"description": "Where the document is: a URL or a file number"})


def _number_too_large(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return False  # not a number: the engine's parser says so
    return number.is_finite() and number != 0 and (
        number.adjusted() > _MAX_ADJUSTED or number.as_tuple().exponent < _MIN_EXPONENT  # type: ignore[operator]
    )


def _check_numbers(items: list[dict[str, Any]], where: str) -> None:
    for index, item in enumerate(items):
        numbers = [item.get(key) for key in _NUMBER_KEYS]
        if isinstance(item.get("values"), dict):
            numbers += list(item["values"].values())
        if any(_number_too_large(number) for number in numbers):
            raise ValidationError(f"{where}[{index}]: numbers must be plain decimals below 10^15 "
                                  f"with at most 12 decimal places")


class MethodologyDraftSchema(Schema):
    """A methodology version's content; the engine's parser checks fields, parameters and formula."""

    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=validate.Length(min=2, max=63),
                         metadata={"example": "SHCI-P-EBIKE"})
    type = fields.String(required=True, validate=validate.OneOf(METHODOLOGY_TYPES))
    title = fields.Nested(BilingualIn, required=True)
    note = fields.Nested(BilingualIn, allow_none=True, load_default=None)
    fields_ = fields.List(fields.Dict(keys=fields.String()), required=True, data_key="fields", attribute="fields",
                          validate=validate.Length(min=1, max=20),
                          metadata={"description": "Declared activity fields: name, type, unit, min, max, ..."})
    parameters = fields.List(fields.Dict(keys=fields.String()), required=True, validate=validate.Length(max=20),
                             metadata={"description": "Parameters: name, unit, value (or values + key_field), "
                                                      "source, provisional"})
    formula = fields.String(required=True, validate=validate.Length(min=1, max=500),
                            metadata={"example": "distance_km * net_g_per_km"})
    data_requirements = fields.Nested(BilingualIn, required=True)
    co_benefits = fields.Nested(CoBenefitsIn, load_default=dict)
    documents = fields.List(fields.Nested(DocumentRefIn), load_default=list, validate=validate.Length(max=20))

    @validates("fields_")
    def _fields_numbers(self, value: list[dict[str, Any]], **_: Any) -> None:
        _check_numbers(value, "fields")

    @validates("parameters")
    def _parameter_numbers(self, value: list[dict[str, Any]], **_: Any) -> None:
        _check_numbers(value, "parameters")


class ReviewSchema(Schema):
    class Meta:
        unknown = RAISE

    decision = fields.String(required=True, validate=validate.OneOf(REVIEW_DECISIONS))
    comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))


class FileSchema(Schema):
    class Meta:
        unknown = RAISE

    comment = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))


class RetireSchema(Schema):
    class Meta:
        unknown = RAISE

    reason = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class MethodologyListArgs(CursorArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    code = fields.String(load_default=None, validate=validate.Length(min=1, max=64))


class BilingualOut(Schema):
    zh = fields.String()
    en = fields.String()


class MethodologyOutSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    version = fields.Integer()
    type = fields.String()
    title = fields.Nested(BilingualOut)
    status = fields.String(metadata={"enum": list(STATUSES)})
    filing_number = fields.String(allow_none=True, metadata={"example": "SHCI-M-2026-001"})
    note = fields.Nested(BilingualOut, allow_none=True)
    fields_ = fields.List(fields.Dict(), data_key="fields", attribute="fields")
    parameters = fields.List(fields.Dict())
    formula = fields.String()
    data_requirements = fields.Nested(BilingualOut)
    co_benefits = fields.Dict()
    documents = fields.List(fields.Dict())
    author_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime(allow_none=True)
    filed_at = fields.DateTime(allow_none=True)
    usable_for_new_scenarios = fields.Boolean(
        metadata={"description": "Filed (or a provisional seed) and not retired: a new scenario may use it"})


class ActorOut(Schema):
    id = fields.Integer()
    display_name = fields.String()
    login = fields.String()


class DecisionOut(Schema):
    id = fields.Integer()
    action = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    comment = fields.String(allow_none=True)
    at = fields.DateTime()
    actor = fields.Nested(ActorOut)


class VersionRefOut(Schema):
    id = fields.Integer()
    version = fields.Integer()
    status = fields.String()
    filing_number = fields.String(allow_none=True)


class MethodologyDetailSchema(MethodologyOutSchema):
    history = fields.List(fields.Nested(DecisionOut))
    versions = fields.List(fields.Nested(VersionRefOut))


class MethodologyPageSchema(Schema):
    items = fields.List(fields.Nested(MethodologyOutSchema))
    next_cursor = fields.String(allow_none=True)


class TrialSchema(Schema):
    class Meta:
        unknown = RAISE

    points_per_gram = _positive_decimal(1000, "The points rate to try (scenario terms)", load_default=Decimal(1))
    activities = fields.List(fields.Dict(keys=fields.String()), required=True, validate=validate.Length(min=1, max=50),
                             metadata={"description": "Sample activities, as partners would report them"})


class TrialResultOut(Schema):
    index = fields.Integer()
    grams = fields.Integer(metadata={"description": "Whole grams CO2e credited (floored, never negative)"})
    exact = fields.String()
    points = fields.Integer(metadata={"description": "Points on the running total of one citizen's day"})
    trace = fields.Dict(metadata={"description": "The formula trace stored with a real credit"})
    error = fields.Dict(metadata={"description": "Why the activity would be rejected: field and reason"})


class TrialOutSchema(Schema):
    methodology_id = fields.Integer()
    code = fields.String()
    version = fields.Integer()
    formula = fields.String()
    points_per_gram = fields.String()
    results = fields.List(fields.Nested(TrialResultOut))
    total_grams = fields.Integer()
    total_points = fields.Integer()


class CapIn(Schema):
    class Meta:
        unknown = RAISE

    unit = fields.String(load_default="events", validate=validate.Length(min=1, max=32),
                         metadata={"description": "events, grams, or a numeric activity field such as weight_kg"})
    per_day = _positive_decimal(10**12, load_default=None, allow_none=True)
    per_month = _positive_decimal(10**12, load_default=None, allow_none=True)


class ScenarioDraftSchema(Schema):
    """A new scenario's terms on a filed methodology version; the seed files' parser checks them."""

    class Meta:
        unknown = RAISE

    methodology_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2**63 - 1))
    code = fields.String(required=True, validate=validate.Length(min=1, max=63), metadata={"example": "ebike_trip"})
    name = fields.Nested(BilingualIn, required=True)
    description = fields.Nested(BilingualIn, required=True)
    category = fields.String(required=True, validate=validate.OneOf(CATEGORIES), metadata={"example": "行"})
    points_per_gram = _positive_decimal(1000, "Points per gram CO2e, e.g. 1 or 0.1", required=True)
    cap = fields.Nested(CapIn, load_default=lambda: {"unit": "events", "per_day": None, "per_month": None})
    data_sources = fields.List(fields.String(validate=validate.OneOf(DATA_SOURCES)), required=True,
                               validate=validate.Length(max=len(DATA_SOURCES)))
    self_declared = fields.Boolean(load_default=False)
    review_required = fields.Boolean(load_default=False)
    trajectory_consent = fields.Boolean(load_default=False)
    effective_from = fields.AwareDateTime(required=True)


class ScenarioTrialSchema(Schema):
    class Meta:
        unknown = RAISE

    activities = fields.List(fields.Dict(keys=fields.String()), required=True, validate=validate.Length(min=1, max=50))


class StaffScenarioCapOut(Schema):
    unit = fields.String()
    per_day = fields.String(allow_none=True)
    per_month = fields.String(allow_none=True)


class StaffScenarioMethodologyOut(Schema):
    id = fields.Integer()
    code = fields.String()
    version = fields.Integer()
    status = fields.String()
    filing_number = fields.String(allow_none=True)
    formula = fields.String()


class StaffScenarioOutSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    category = fields.String()
    status = fields.String(metadata={"enum": ["draft", "live", "paused", "retired"]})
    version = fields.Integer()
    name = fields.Nested(BilingualOut)
    description = fields.Nested(BilingualOut)
    points_per_gram = fields.String()
    cap = fields.Nested(StaffScenarioCapOut)
    data_sources = fields.List(fields.String())
    self_declared = fields.Boolean()
    review_required = fields.Boolean()
    trajectory_consent = fields.Boolean()
    effective_from = fields.DateTime()
    methodology = fields.Nested(StaffScenarioMethodologyOut)


class StaffScenarioTrialOutSchema(Schema):
    scenario_id = fields.Integer()
    scenario_version = fields.Integer()
    formula = fields.String()
    points_per_gram = fields.String()
    results = fields.List(fields.Nested(TrialResultOut))
    total_grams = fields.Integer()
    total_points = fields.Integer()
