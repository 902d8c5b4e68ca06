"""Schemas for the data export and account deletion (component names start with PrivacyRights)."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate


class PrivacyRightsExportSchema(Schema):
    """The download: the sections below, each a list of rows as stored (see `withheld`)."""

    class Meta:
        unknown = RAISE

    format = fields.String(required=True, metadata={"description": "carbon-account-export/1"})
    generated_at = fields.String(required=True)
    citizen_id = fields.Integer(required=True)
    explanation = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    withheld = fields.Dict(required=True, metadata={"description": "table -> column -> why it is left out"})
    balances = fields.Dict(required=True)
    profile = fields.Dict(required=True, metadata={"description": "the account, with the phone in full"})
    identities = fields.List(fields.Dict(), required=True, metadata={"description": "linked sign-in providers"})
    sessions = fields.List(fields.Dict(), required=True)
    consents = fields.List(fields.Dict(), required=True, metadata={"description": "granted and withdrawn"})
    binding_codes = fields.List(fields.Dict(), required=True)
    bindings = fields.List(fields.Dict(), required=True, metadata={"description": "partner, masked reference"})
    events = fields.List(fields.Dict(), required=True, metadata={"description": "behaviours and their outcome"})
    usage_daily = fields.List(fields.Dict(), required=True)
    usage_monthly = fields.List(fields.Dict(), required=True)
    ledger_accounts = fields.List(fields.Dict(), required=True)
    ledger_entries = fields.List(fields.Dict(), required=True)
    point_lots = fields.List(fields.Dict(), required=True)
    reversals = fields.List(fields.Dict(), required=True)
    notifications = fields.List(fields.Dict(), required=True)
    badges = fields.List(fields.Dict(), required=True)
    honour_profile = fields.List(fields.Dict(), required=True)
    offer_claims = fields.List(fields.Dict(), required=True)
    coupons = fields.List(fields.Dict(), required=True)
    honour_exchanges = fields.List(fields.Dict(), required=True)
    merchant_roles = fields.List(fields.Dict(), required=True)
    appeals = fields.List(fields.Dict(), required=True)
    deletion_requests = fields.List(fields.Dict(), required=True)


class PrivacyRightsConsequenceSchema(Schema):
    en = fields.String(required=True)
    zh = fields.String(required=True)


class PrivacyRightsDeletionRequestSchema(Schema):
    points_forfeited = fields.Integer(required=True, metadata={"description": "available and held points"})
    points_held_by_coupons = fields.Integer(required=True)
    coupons_cancelled = fields.Integer(required=True)
    bindings_removed = fields.Integer(required=True)
    consequences = fields.List(fields.Nested(PrivacyRightsConsequenceSchema), required=True,
                               metadata={"description": "what deletion does, said plainly (zh, en)"})
    confirmation_token = fields.String(required=True, metadata={"description": "send it to POST /me/deletion"})
    expires_at = fields.DateTime(required=True)


class PrivacyRightsDeletionConfirmSchema(Schema):
    class Meta:
        unknown = RAISE

    confirmation_token = fields.String(required=True, validate=validate.Length(min=1, max=128))


class PrivacyRightsDeletionReceiptSchema(Schema):
    deleted_at = fields.DateTime(required=True)
    points_forfeited = fields.Integer(required=True)
    coupons_cancelled = fields.Integer(required=True)
    bindings_removed = fields.Integer(required=True)
