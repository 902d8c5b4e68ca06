"""Output schemas for the public scenario catalogue."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields


class BilingualSchema(Schema):
    zh = fields.String()
    en = fields.String()


class ParameterOutSchema(Schema):
    name = fields.String()
    unit = fields.String()
    value = fields.String(allow_none=True, metadata={"description": "Decimal as a string"})
    key_field = fields.String(allow_none=True)
    values = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    source = fields.String()
    provisional = fields.Boolean()


class ActivityFieldOutSchema(Schema):
    name = fields.String()
    type = fields.String()
    unit = fields.String(allow_none=True)
    required = fields.Boolean()
    allowed = fields.List(fields.String(), allow_none=True)


class CapsSchema(Schema):
    unit = fields.String(metadata={"description": "events, grams, or an activity field such as weight_kg"})
    per_day = fields.String(allow_none=True)
    per_month = fields.String(allow_none=True)


class PartnerRefSchema(Schema):
    code = fields.String()
    name = fields.Nested(BilingualSchema)


class DataSourceSchema(Schema):
    kind = fields.String()
    partners = fields.List(fields.Nested(PartnerRefSchema))


class MethodologyRefSchema(Schema):
    code = fields.String()
    version = fields.Integer()
    status = fields.String()
    filing_number = fields.String(allow_none=True)
    title = fields.Nested(BilingualSchema)
    note = fields.Nested(BilingualSchema, allow_none=True)


class ScenarioOutSchema(Schema):
    code = fields.String()
    version = fields.Integer()
    category = fields.String()
    name = fields.Nested(BilingualSchema)
    description = fields.Nested(BilingualSchema)
    methodology = fields.Nested(MethodologyRefSchema)
    formula = fields.String()
    activity_fields = fields.List(fields.Nested(ActivityFieldOutSchema))
    parameters = fields.List(fields.Nested(ParameterOutSchema))
    points_per_gram = fields.String()
    caps = fields.Nested(CapsSchema)
    data_sources = fields.List(fields.Nested(DataSourceSchema))
    self_declared = fields.Boolean()
    review_required = fields.Boolean()
    trajectory_consent = fields.Boolean()
    effective_from = fields.DateTime()
    effective_to = fields.DateTime(allow_none=True)


class ScenarioListSchema(Schema):
    items = fields.List(fields.Nested(ScenarioOutSchema))


class ScenarioQuerySchema(Schema):
    class Meta:
        unknown = RAISE
