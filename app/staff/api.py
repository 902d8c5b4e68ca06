"""HTTP routes for staff sign-in and (admins) staff management: parse, call the service, dump."""
from __future__ import annotations

from typing import Any

from flask import current_app, g
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, STAFF_ROLES, role_required
from app.errors import AppError
from app.extensions import limiter
from app.staff import service
from app.staff.models import StaffUser
from app.staff.schemas import (
    StaffLoginSchema,
    StaffSessionSchema,
    StaffUserCreateSchema,
    StaffUserListArgs,
    StaffUserPageSchema,
    StaffUserSchema,
    StaffUserUpdateSchema,
)

blp = Blueprint("staff", __name__, description="Staff accounts (operators, reviewers, admins): sign-in and management")

PUBLIC: list[dict[str, list[str]]] = []


def _auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


@blp.post("/staff/session")
@blp.doc(security=PUBLIC)
@limiter.limit(_auth_limit)
@blp.arguments(StaffLoginSchema)
@blp.response(200, StaffSessionSchema)
def sign_in(body: dict[str, Any]) -> service.StaffSignedIn:
    """Sign in with login and password; the access token carries the staff member's role."""
    try:
        return service.sign_in(body["login"], body["password"])
    except AppError as error:
        error.keep_changes = True  # the failed-login audit row is kept
        raise


@blp.get("/staff/me")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, StaffUserSchema)
@role_required(*STAFF_ROLES)
def me() -> StaffUser:
    """The signed-in staff account."""
    return service.get_staff(g.actor.id)


@blp.post("/staff/users")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, StaffUserSchema)
@role_required("admin")
@blp.arguments(StaffUserCreateSchema)
def create_user(body: dict[str, Any]) -> StaffUser:
    """Create a staff account (admins only)."""
    return service.create_staff(body["login"], body["display_name"], body["password"], body["role"],
                                created_by=g.actor.id)


@blp.get("/staff/users")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, StaffUserPageSchema)
@role_required("admin")
@blp.arguments(StaffUserListArgs, location="query", as_kwargs=True)
def list_users(cursor: str | None, limit: int, role: str | None, status: str | None) -> dict[str, Any]:
    """Staff accounts, oldest first (admins only)."""
    return service.list_staff(cursor, limit, role=role, status=status)


@blp.get("/staff/users/<id:staff_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, StaffUserSchema)
@role_required("admin")
def get_user(staff_id: int) -> StaffUser:
    """One staff account (admins only)."""
    return service.get_staff(staff_id)


@blp.patch("/staff/users/<id:staff_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, StaffUserSchema)
@role_required("admin")
@blp.arguments(StaffUserUpdateSchema)
def update_user(body: dict[str, Any], staff_id: int) -> StaffUser:
    """Change role, suspend or reactivate, rename, reset the password (admins only)."""
    return service.update_staff(g.actor.id, staff_id, body)
