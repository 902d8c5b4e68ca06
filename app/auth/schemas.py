"""Request and response bodies for sign-in, tokens and linked identities (marshmallow 4)."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

_CODE = validate.Length(min=1, max=512)
_REFRESH = validate.Length(min=1, max=256)


class AuthLoginCodeSchema(Schema):
    """A one-time login code from the provider (wx.login, my.getAuthCode, Suishenban redirect)."""

    class Meta:
        unknown = RAISE

    code = fields.String(required=True, validate=_CODE)


class AuthRefreshTokenSchema(Schema):
    class Meta:
        unknown = RAISE

    refresh_token = fields.String(required=True, validate=_REFRESH)


class AuthAuthorizeUrlQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    state = fields.String(
        required=True,
        validate=[validate.Length(min=8, max=128), validate.Regexp(r"^[A-Za-z0-9._~-]+$")],
        metadata={"description": "An unguessable value the H5 page checks when Suishenban redirects back."},
    )


class AuthAuthorizeUrlSchema(Schema):
    url = fields.String(dump_only=True)


class AuthCitizenSummarySchema(Schema):
    id = fields.Integer(dump_only=True)
    home_district = fields.String(dump_only=True, allow_none=True)
    consents_required = fields.Boolean(
        dump_only=True, metadata={"description": "True until the current privacy terms are accepted."}
    )
    linked_providers = fields.List(fields.String(), dump_only=True)


class AuthTokensSchema(Schema):
    access_token = fields.String(dump_only=True)
    token_type = fields.String(dump_only=True)
    expires_in = fields.Integer(dump_only=True, metadata={"description": "Seconds the access token is valid."})
    refresh_token = fields.String(
        dump_only=True, metadata={"description": "Opaque, single use: each refresh returns a new one."}
    )
    refresh_expires_in = fields.Integer(dump_only=True)
    citizen = fields.Nested(AuthCitizenSummarySchema, dump_only=True)


class AuthLinkedIdentitySchema(Schema):
    provider = fields.String(dump_only=True)
    linked_at = fields.DateTime(dump_only=True, attribute="created_at")
    last_login_at = fields.DateTime(dump_only=True, allow_none=True)


class AuthLinkedIdentityListSchema(Schema):
    items = fields.List(fields.Nested(AuthLinkedIdentitySchema), dump_only=True)
