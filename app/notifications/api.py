"""HTTP routes for a citizen's notifications: parse, call the service, dump."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, citizen_required
from app.notifications import service
from app.notifications.models import Notification
from app.notifications.schemas import NotificationPageSchema, NotificationSchema
from app.pagination import CursorArgs

blp = Blueprint("notifications", __name__, description="A citizen's notifications")


@blp.get("/me/notifications")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, NotificationPageSchema)
@citizen_required
@blp.arguments(CursorArgs, location="query", as_kwargs=True)
def my_notifications(cursor: str | None, limit: int) -> dict[str, Any]:
    """My notifications, newest first, and how many are unread."""
    return service.notifications_page(g.citizen_id, cursor=cursor, limit=limit)


@blp.post("/me/notifications/<id:notification_id>/read")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, NotificationSchema)
@citizen_required
def read_notification(notification_id: int) -> Notification:
    """Mark one of my notifications read (marking it again changes nothing)."""
    return service.mark_read(g.citizen_id, notification_id)
