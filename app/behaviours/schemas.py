"""Request and response bodies for partner batches and citizens' behaviours."""
from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from app.behaviours.ingest import STATUS_PAGE_MAX
from app.pagination import CursorArgs

EVIDENCE_MAX_KEYS = 10
EVIDENCE_MAX_TEXT = 500


# ---------------------------------------------------------------------------------------------
# Partner batches

class PartnerEventSchema(Schema):
    """One event in a batch. Documentation only: events are validated one by one in plain Python
    (app.behaviours.ingest), so that one bad event is rejected alone and 5,000 stay fast."""

    class Meta:
        unknown = RAISE

    event_id = fields.String(required=True, metadata={"description": "Your id for the event (1-128 printable "
                                                      "ASCII); the idempotency key: resending it is a duplicate."})
    account_ref = fields.String(required=True, metadata={"description": "Your pseudonymous account reference the "
                                                         "citizen bound (POST /partner/bindings)."})
    scenario = fields.String(required=True, metadata={"example": "metro_trip"})
    occurred_at = fields.AwareDateTime(required=True, metadata={"description": "ISO 8601 with an offset; not in "
                                                                "the future, at most 7 days old."})
    district = fields.String(allow_none=True, metadata={"description": "One of the 16 codes of GET /districts."})
    activity = fields.Dict(required=True, metadata={"description": "The scenario's activity fields, e.g. "
                                                    "{\"distance_km\": \"12.4\"}."})
    claimed_elsewhere = fields.Boolean(required=True, metadata={
        "description": "True if this reduction was already claimed on another platform: then it is rejected "
                       "(double_counting, 沪环规〔2025〕10号 Art. 3)."})


class RawEventList(fields.List):
    """A list of event objects passed through as decoded JSON: documented as PartnerEvent items,
    but not deserialised item by item (each event gets its own verdict in the service)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ValidationError("Must be a list of event objects.")
        return value


class PartnerEventBatchSchema(Schema):
    class Meta:
        unknown = RAISE

    events = RawEventList(fields.Nested(PartnerEventSchema), required=True,
                          metadata={"description": "1-5,000 events; more answers 413 batch_too_large."})


class PartnerEventVerdictSchema(Schema):
    index = fields.Integer(dump_only=True)
    event_id = fields.String(dump_only=True, allow_none=True)
    status = fields.String(dump_only=True, metadata={"enum": ["accepted", "duplicate", "rejected"]})
    code = fields.String(dump_only=True, metadata={"description": "Why it was rejected, e.g. invalid_activity, "
                                                   "event_too_old, source_not_allowed, double_counting."})
    reason = fields.String(dump_only=True)


class PartnerBatchReceiptSchema(Schema):
    batch_id = fields.UUID(dump_only=True)
    received = fields.Integer(dump_only=True)
    accepted = fields.Integer(dump_only=True)
    duplicates = fields.Integer(dump_only=True)
    rejected = fields.Integer(dump_only=True)
    events = fields.List(fields.Nested(PartnerEventVerdictSchema), dump_only=True)


class PartnerBatchStatusArgs(CursorArgs):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=STATUS_PAGE_MAX),
                           metadata={"description": f"Events per page, at most {STATUS_PAGE_MAX}."})


class PartnerBatchEventSchema(Schema):
    event_id = fields.String(dump_only=True, allow_none=True)
    status = fields.String(dump_only=True, metadata={"description": "accepted (not yet credited), credited, "
                           "capped, unknown_account, no_consent, flagged, duplicate_item or rejected."})
    index = fields.Integer(dump_only=True, metadata={"description": "Position in the batch (rejected events)."})
    code = fields.String(dump_only=True)
    reason = fields.String(dump_only=True)
    grams = fields.Integer(dump_only=True)
    credited_grams = fields.Integer(dump_only=True)
    capped_grams = fields.Integer(dump_only=True)
    points = fields.Integer(dump_only=True)


class PartnerBatchCountsSchema(Schema):
    received = fields.Integer(dump_only=True)
    accepted = fields.Integer(dump_only=True)
    duplicates = fields.Integer(dump_only=True)
    rejected = fields.Integer(dump_only=True)
    outcomes = fields.Dict(keys=fields.String(), values=fields.Integer(), dump_only=True,
                           metadata={"description": "Stored events by current status."})


class PartnerBatchStatusSchema(Schema):
    batch_id = fields.UUID(dump_only=True)
    received_at = fields.DateTime(dump_only=True)
    completed_at = fields.DateTime(dump_only=True, allow_none=True)
    counts = fields.Nested(PartnerBatchCountsSchema, dump_only=True)
    events = fields.List(fields.Nested(PartnerBatchEventSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)


# ---------------------------------------------------------------------------------------------
# Citizens' behaviours

class BehaviourDeclareSchema(Schema):
    class Meta:
        unknown = RAISE

    scenario = fields.String(required=True, validate=validate.Length(min=1, max=64),
                             metadata={"example": "paperless"})
    occurred_at = fields.AwareDateTime(load_default=None, metadata={"description": "Defaults to now."})
    activity = fields.Dict(required=True, metadata={
        "example": {"item_type": "e_invoice", "document_number": "25312000000012345678", "count": 1}})
    evidence = fields.Dict(keys=fields.String(validate=validate.Length(max=64)),
                           values=fields.String(validate=validate.Length(max=EVIDENCE_MAX_TEXT)),
                           load_default=None, metadata={"description": "Optional supporting references, e.g. "
                                                        "{\"receipt_photo\": \"upload id\"}."})

    @validates("evidence")
    def _small_evidence(self, value: dict | None, **_: Any) -> None:
        if value is not None and len(value) > EVIDENCE_MAX_KEYS:
            raise ValidationError(f"At most {EVIDENCE_MAX_KEYS} entries.")


class BehaviourSchema(Schema):
    id = fields.Integer(dump_only=True)
    scenario = fields.String(dump_only=True)
    source = fields.String(dump_only=True, metadata={"enum": ["citizen", "partner"]})
    partner = fields.String(dump_only=True, allow_none=True, metadata={"description": "Reporting partner's code."})
    status = fields.String(dump_only=True)
    reason = fields.String(dump_only=True, allow_none=True)
    occurred_at = fields.DateTime(dump_only=True)
    submitted_at = fields.DateTime(dump_only=True)
    activity = fields.Dict(dump_only=True, metadata={"description": "Item numbers masked but the last 4."})
    item_type = fields.String(dump_only=True, allow_none=True)
    document_number = fields.String(dump_only=True, allow_none=True, metadata={"description": "Masked."})
    grams = fields.Integer(dump_only=True, allow_none=True)
    credited_grams = fields.Integer(dump_only=True, allow_none=True)
    capped_grams = fields.Integer(dump_only=True, allow_none=True)
    points = fields.Integer(dump_only=True, allow_none=True)


class BehaviourListSchema(Schema):
    items = fields.List(fields.Nested(BehaviourSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)
