"""Request and response bodies for staff sign-in and staff management."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from app.pagination import CursorArgs
from app.staff.models import STAFF_ROLES, STAFF_STATUSES
from app.staff.service import PASSWORD_MAX, PASSWORD_MIN

_LOGIN = validate.Length(min=1, max=64)
_NAME = validate.Length(min=1, max=128)


class StaffLoginSchema(Schema):
    class Meta:
        unknown = RAISE

    login = fields.String(required=True, validate=_LOGIN, metadata={"example": "ops.li"})
    password = fields.String(required=True, validate=validate.Length(min=1, max=PASSWORD_MAX),
                             load_only=True)


class StaffUserSchema(Schema):
    id = fields.Integer(dump_only=True)
    login = fields.String(dump_only=True)
    display_name = fields.String(dump_only=True)
    role = fields.String(dump_only=True, metadata={"enum": list(STAFF_ROLES)})
    status = fields.String(dump_only=True, metadata={"enum": list(STAFF_STATUSES)})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True, allow_none=True)
    last_login_at = fields.DateTime(dump_only=True, allow_none=True)


class StaffSessionSchema(Schema):
    access_token = fields.String(dump_only=True)
    token_type = fields.String(dump_only=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(dump_only=True, metadata={"description": "Seconds until the token expires."})
    staff = fields.Nested(StaffUserSchema, dump_only=True)


class StaffUserCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    login = fields.String(required=True, validate=_LOGIN,
                          metadata={"description": "3-64 characters: a-z, 0-9, '.', '_', '@', '-'."})
    display_name = fields.String(required=True, validate=_NAME)
    password = fields.String(required=True, load_only=True,
                             validate=validate.Length(min=PASSWORD_MIN, max=PASSWORD_MAX))
    role = fields.String(required=True, validate=validate.OneOf(STAFF_ROLES))


class StaffUserUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    role = fields.String(validate=validate.OneOf(STAFF_ROLES))
    status = fields.String(validate=validate.OneOf(STAFF_STATUSES),
                           metadata={"description": "suspended: refused at once, even with a valid token."})
    display_name = fields.String(validate=_NAME)
    password = fields.String(load_only=True, validate=validate.Length(min=PASSWORD_MIN, max=PASSWORD_MAX))


class StaffUserListArgs(CursorArgs):
    role = fields.String(load_default=None, validate=validate.OneOf(STAFF_ROLES))
    status = fields.String(load_default=None, validate=validate.OneOf(STAFF_STATUSES))


class StaffUserPageSchema(Schema):
    items = fields.List(fields.Nested(StaffUserSchema), dump_only=True)
    next_cursor = fields.String(allow_none=True, required=True)
