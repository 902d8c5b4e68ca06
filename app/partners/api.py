"""HTTP routes for partners and account bindings: parse, call the service, dump. No business rules here."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, citizen_required
from app.partners import service
from app.partners.schemas import (
    BindingCodeRequestSchema,
    BindingCodeSchema,
    BindingListSchema,
    PartnerBindingConfirmedSchema,
    PartnerBindingConfirmSchema,
    PartnerPublicListSchema,
    PartnerUnbindSchema,
)
from app.partners.signatures import PARTNER_SECURITY, partner_rate_limit, partner_required

blp = Blueprint("partners", __name__, description="Partners and account bindings (signed partner API: "
                "HMAC-SHA256 over timestamp\\nnonce\\nbody)")

PUBLIC: list[dict[str, list[str]]] = []


@blp.get("/partners")
@blp.doc(security=PUBLIC)
@blp.response(200, PartnerPublicListSchema)
def list_partners() -> dict[str, Any]:
    """Active partners a citizen can bind an account at."""
    return {"items": service.public_partners()}


@blp.post("/me/bindings/codes")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, BindingCodeSchema)
@citizen_required
@blp.arguments(BindingCodeRequestSchema)
def issue_binding_code(body: dict[str, Any]) -> dict[str, Any]:
    """A one-time code (10 minutes) to type into the partner's app; earlier unused codes stop working."""
    code, expires_at = service.issue_binding_code(g.citizen_id, body["partner_code"])
    return {"code": code, "expires_at": expires_at}


@blp.get("/me/bindings")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, BindingListSchema)
@citizen_required
def list_bindings() -> dict[str, Any]:
    """My active bindings; account references are masked."""
    return {"items": service.citizen_bindings(g.citizen_id)}


@blp.delete("/me/bindings/<id:binding_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(204)
@citizen_required
def unbind(binding_id: int) -> None:
    """End one of my bindings: the partner's later events no longer reach my account."""
    service.unbind_for_citizen(g.citizen_id, binding_id)


@blp.post("/partner/bindings")
@blp.doc(security=PARTNER_SECURITY)
@blp.response(201, PartnerBindingConfirmedSchema)
@partner_required
@partner_rate_limit()
@blp.arguments(PartnerBindingConfirmSchema)
def confirm_binding(body: dict[str, Any]) -> dict[str, Any]:
    """Confirm a citizen's binding code with your account reference (replaces their earlier binding)."""
    binding = service.confirm_binding(g.partner, body["binding_code"], body["account_ref"])
    return {"status": "bound", "bound_at": binding.bound_at}


@blp.delete("/partner/bindings")
@blp.doc(security=PARTNER_SECURITY)
@blp.response(204)
@partner_required
@partner_rate_limit()
@blp.arguments(PartnerUnbindSchema)
def partner_unbind(body: dict[str, Any]) -> None:
    """Unbind one of your account references (e.g. the card was cancelled)."""
    service.unbind_for_partner(g.partner, body["account_ref"])
