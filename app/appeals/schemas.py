"""Schemas for appeals (component names start with Appeal)."""
from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.appeals.models import APPEAL_STATUSES
from app.appeals.service import MAX_APPEAL_POINTS
from app.pagination import CursorArgs

_TEXT = {"allow_none": True, "load_default": None}


class AppealFileSchema(Schema):
    class Meta:
        unknown = RAISE

    scenario_code = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                  metadata={"description": "the scenario that should have credited, e.g. metro_trip"})
    occurred_at = fields.AwareDateTime(required=True, metadata={"description": "when the behaviour happened"})
    partner_reference = fields.String(validate=validate.Length(min=1, max=128), **_TEXT,
                                      metadata={"description": "the partner's trip or order number, if known"})
    description = fields.String(validate=validate.Length(min=1, max=1000), **_TEXT)
    einvoice_number = fields.String(validate=validate.Regexp(r"^[0-9A-Za-z]{8,32}$"), **_TEXT)

    @validates_schema
    def _something_to_go_on(self, data: dict[str, Any], **_: Any) -> None:
        if not any(data.get(name) for name in ("partner_reference", "description", "einvoice_number")):
            raise ValidationError("Give a partner reference, a description or an e-invoice number.",
                                  field_name="description")


class AppealSchema(Schema):
    id = fields.Integer(dump_only=True)
    scenario_code = fields.String(dump_only=True)
    occurred_at = fields.DateTime(dump_only=True)
    partner_reference = fields.String(dump_only=True, allow_none=True)
    description = fields.String(dump_only=True, allow_none=True)
    einvoice_number = fields.String(dump_only=True, allow_none=True)
    status = fields.String(dump_only=True, metadata={"description": " | ".join(APPEAL_STATUSES)})
    reason = fields.String(dump_only=True, allow_none=True, metadata={"description": "the reviewer's reason"})
    points = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "credited on approval"})
    decided_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class AppealPageSchema(Schema):
    items = fields.List(fields.Nested(AppealSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)


class AppealReviewSchema(AppealSchema):
    citizen_id = fields.Integer(dump_only=True)
    transfer_id = fields.UUID(dump_only=True, allow_none=True)


class AppealReviewPageSchema(Schema):
    items = fields.List(fields.Nested(AppealReviewSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)


class AppealReviewListArgs(CursorArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(APPEAL_STATUSES))


class AppealDecisionSchema(Schema):
    class Meta:
        unknown = RAISE

    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    points = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_APPEAL_POINTS),
                            metadata={"description": f"points to credit on approval (1-{MAX_APPEAL_POINTS}; "
                                                     "more needs the console's two-reviewer adjustment)"})
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=500),
                           metadata={"description": "shown to the citizen; required to reject"})

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if data["decision"] == "approve" and data.get("points") is None:
            raise ValidationError("Say how many points to credit.", field_name="points")
        if data["decision"] == "reject":
            if not (data.get("reason") or "").strip():
                raise ValidationError("Tell the citizen why.", field_name="reason")
            if data.get("points") is not None:
                raise ValidationError("A rejection credits nothing.", field_name="points")
