"""HTTP routes for merchants, stores and merchant staff: parse, call the service, dump.

/merchants/... is the operators' side (any merchant); /merchant/... is merchant mode, always
scoped to the caller's own merchant (taken from the token, never from the request).
"""
from __future__ import annotations

from typing import Any

from flask import current_app, g
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, citizen_required, role_required
from app.extensions import limiter
from rewards.merchants import service
from rewards.merchants.models import Merchant, Store
from rewards.merchants.schemas import (
    MerchantCreateSchema,
    MerchantInvitationAcceptSchema,
    MerchantInvitationCreateSchema,
    MerchantInvitationSchema,
    MerchantListArgs,
    MerchantMeSchema,
    MerchantPageSchema,
    MerchantSchema,
    MerchantSessionSchema,
    MerchantStaffListArgs,
    MerchantStaffPageSchema,
    MerchantStaffSchema,
    MerchantStaffUpdateSchema,
    MerchantStoreCreateSchema,
    MerchantStoreListSchema,
    MerchantStoreSchema,
    MerchantStoreUpdateSchema,
    MerchantUpdateSchema,
)

blp = Blueprint("merchants", __name__, description="Merchants, stores and merchant staff (operators; merchant mode)")

MERCHANT_ROLES = ("merchant_staff", "merchant_admin")


def _auth_limit() -> str:
    return current_app.config["RATELIMIT_AUTH"]


def _own_merchant() -> int:
    return service.merchant_of_staff(g.actor.id)


# ---- operators ------------------------------------------------------------------------------

@blp.post("/merchants")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, MerchantSchema)
@role_required("operator")
@blp.arguments(MerchantCreateSchema)
def create_merchant(body: dict[str, Any]) -> Merchant:
    """Onboard a merchant (operators)."""
    return service.create_merchant(g.actor, body["name_zh"], body["name_en"])


@blp.get("/merchants")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantPageSchema)
@role_required("operator")
@blp.arguments(MerchantListArgs, location="query", as_kwargs=True)
def list_merchants(cursor: str | None, limit: int, status: str | None) -> dict[str, Any]:
    """Merchants, oldest first (operators)."""
    return service.list_merchants(cursor, limit, status)


@blp.get("/merchants/<id:merchant_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantSchema)
@role_required("operator")
def get_merchant(merchant_id: int) -> Merchant:
    """One merchant (operators)."""
    return service.get_merchant(merchant_id)


@blp.patch("/merchants/<id:merchant_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantSchema)
@role_required("operator")
@blp.arguments(MerchantUpdateSchema)
def update_merchant(body: dict[str, Any], merchant_id: int) -> Merchant:
    """Rename, suspend or reactivate a merchant (operators). Its staff are refused at once when suspended."""
    return service.update_merchant(g.actor, merchant_id, body)


@blp.post("/merchants/<id:merchant_id>/stores")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, MerchantStoreSchema)
@role_required("operator")
@blp.arguments(MerchantStoreCreateSchema)
def create_store(body: dict[str, Any], merchant_id: int) -> Store:
    """Add a store (operators)."""
    return service.create_store(g.actor, merchant_id, body["name"], body["district"], body["address"])


@blp.get("/merchants/<id:merchant_id>/stores")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantStoreListSchema)
@role_required("operator")
def list_stores(merchant_id: int) -> dict[str, Any]:
    """A merchant's stores (operators)."""
    return {"items": service.list_stores(merchant_id)}


@blp.patch("/merchants/<id:merchant_id>/stores/<id:store_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantStoreSchema)
@role_required("operator")
@blp.arguments(MerchantStoreUpdateSchema)
def update_store(body: dict[str, Any], merchant_id: int, store_id: int) -> Store:
    """Rename, move or close a store (operators)."""
    return service.update_store(g.actor, merchant_id, store_id, body)


@blp.get("/merchants/<id:merchant_id>/staff")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantStaffPageSchema)
@role_required("operator")
@blp.arguments(MerchantStaffListArgs, location="query", as_kwargs=True)
def list_staff_of_merchant(cursor: str | None, limit: int, status: str, merchant_id: int) -> dict[str, Any]:
    """A merchant's staff (operators)."""
    service.get_merchant(merchant_id)
    return service.list_merchant_staff(merchant_id, cursor, limit, status)


@blp.delete("/merchants/<id:merchant_id>/staff/<id:staff_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(204)
@role_required("operator")
def remove_staff_of_merchant(merchant_id: int, staff_id: int) -> None:
    """Unbind a merchant's staff member (operators); their merchant token stops working at once."""
    service.remove_merchant_staff(g.actor, merchant_id, staff_id)


@blp.post("/merchants/<id:merchant_id>/staff-invitations")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, MerchantInvitationSchema)
@role_required("operator")
@blp.arguments(MerchantInvitationCreateSchema)
def invite_staff_as_operator(body: dict[str, Any], merchant_id: int) -> dict[str, Any]:
    """A one-time code (10 minutes) that binds a citizen as this merchant's staff, e.g. its first admin."""
    code, expires_at = service.issue_invitation(g.actor, merchant_id, body["role"], body["store_ids"],
                                                body["label"])
    return {"code": code, "expires_at": expires_at}


# ---- the citizen becoming staff, and merchant mode -------------------------------------------

@blp.post("/merchant/staff-invitations:accept")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, MerchantStaffSchema)
@citizen_required
@limiter.limit(_auth_limit)
@blp.arguments(MerchantInvitationAcceptSchema)
def accept_invitation(body: dict[str, Any]) -> service.StaffView:
    """Redeem an invitation code: my account becomes the merchant's staff (one merchant at a time)."""
    return service.accept_invitation(g.citizen_id, body["code"])


@blp.post("/merchant/session")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantSessionSchema)
@citizen_required
def merchant_session() -> service.MerchantSignedIn:
    """Switch to merchant mode: a merchant-staff access token for a citizen bound as active staff."""
    return service.start_merchant_session(g.citizen_id)


@blp.get("/merchant/me")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantMeSchema)
@role_required(*MERCHANT_ROLES)
def merchant_me() -> dict[str, Any]:
    """Who I am in merchant mode, my merchant and the stores I may act at."""
    return service.merchant_me(g.actor.id)


@blp.get("/merchant/stores")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantStoreListSchema)
@role_required(*MERCHANT_ROLES)
def my_merchant_stores() -> dict[str, Any]:
    """All stores of my merchant."""
    return {"items": service.list_stores(_own_merchant())}


@blp.get("/merchant/staff")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantStaffPageSchema)
@role_required("merchant_admin")
@blp.arguments(MerchantStaffListArgs, location="query", as_kwargs=True)
def list_my_staff(cursor: str | None, limit: int, status: str) -> dict[str, Any]:
    """My merchant's staff (merchant admins)."""
    return service.list_merchant_staff(_own_merchant(), cursor, limit, status)


@blp.post("/merchant/staff-invitations")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, MerchantInvitationSchema)
@role_required("merchant_admin")
@blp.arguments(MerchantInvitationCreateSchema)
def invite_staff(body: dict[str, Any]) -> dict[str, Any]:
    """A one-time code (10 minutes) that binds a citizen as staff of my merchant (merchant admins)."""
    code, expires_at = service.issue_invitation(g.actor, _own_merchant(), body["role"], body["store_ids"],
                                                body["label"])
    return {"code": code, "expires_at": expires_at}


@blp.patch("/merchant/staff/<id:staff_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MerchantStaffSchema)
@role_required("merchant_admin")
@blp.arguments(MerchantStaffUpdateSchema)
def update_my_staff(body: dict[str, Any], staff_id: int) -> service.StaffView:
    """Change a staff member's stores, role or label (merchant admins, own merchant only)."""
    return service.update_merchant_staff(g.actor, _own_merchant(), staff_id, body)


@blp.delete("/merchant/staff/<id:staff_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(204)
@role_required("merchant_admin")
def remove_my_staff(staff_id: int) -> None:
    """Remove a staff member of my merchant (merchant admins); their token stops working at once."""
    service.remove_merchant_staff(g.actor, _own_merchant(), staff_id)
