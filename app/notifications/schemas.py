"""Output schemas for notifications (component names start with Notification)."""
from __future__ import annotations

from marshmallow import Schema, fields


class NotificationSchema(Schema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(dump_only=True, metadata={"description": "points_expiring, badge_earned, ..."})
    payload = fields.Dict(dump_only=True, metadata={"description": "ids, amounts and dates the mini-app renders"})
    read = fields.Method("is_read", dump_only=True)
    read_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)

    def is_read(self, notification: object) -> bool:
        return getattr(notification, "read_at", None) is not None


class NotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema), dump_only=True)
    next_cursor = fields.String(dump_only=True, allow_none=True)
    unread_count = fields.Integer(dump_only=True)
