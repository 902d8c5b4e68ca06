"""HTTP routes for the citizen's account, consents and reference data: parse, call the service, dump."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from app.accounts import service
from app.accounts.districts import DISTRICTS
from app.accounts.schemas import (
    AccountConsentGrantSchema,
    AccountConsentListSchema,
    AccountConsentSchema,
    AccountDistrictListSchema,
    AccountMeSchema,
    AccountMeUpdateSchema,
    AccountPrivacyTermsSchema,
)
from app.accounts.terms import current_terms
from app.auth.guard import BEARER_SECURITY, citizen_required

blp = Blueprint("accounts", __name__, description="My account, privacy terms and consents, districts")

PUBLIC: list[dict[str, list[str]]] = []


@blp.get("/privacy-terms")
@blp.doc(security=PUBLIC)
@blp.response(200, AccountPrivacyTermsSchema)
def privacy_terms() -> dict[str, Any]:
    """The current privacy terms (zh and en); consent names this version."""
    return current_terms()


@blp.get("/districts")
@blp.doc(security=PUBLIC)
@blp.response(200, AccountDistrictListSchema)
def districts() -> dict[str, Any]:
    """Shanghai's 16 districts: the values `home_district` may take."""
    return {"items": [d._asdict() for d in DISTRICTS]}


@blp.get("/me")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, AccountMeSchema)
@citizen_required
def get_me() -> dict[str, Any]:
    """My account: id, home district, masked phone, linked sign-ins."""
    return service.profile(g.citizen_id)


@blp.patch("/me")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, AccountMeSchema)
@citizen_required
@blp.arguments(AccountMeUpdateSchema)
def update_me(body: dict[str, Any]) -> dict[str, Any]:
    """Set (or clear, with null) my home district."""
    if "home_district" in body:
        service.set_home_district(g.citizen_id, body["home_district"])
    return service.profile(g.citizen_id)


@blp.get("/me/consents")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, AccountConsentListSchema)
@citizen_required
def list_consents() -> dict[str, Any]:
    """My consents, active and withdrawn, newest first."""
    return {"items": service.list_consents(g.citizen_id)}


@blp.post("/me/consents")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, AccountConsentSchema)
@blp.alt_response(200, schema=AccountConsentSchema, description="Already consented: the existing consent.")
@citizen_required
@blp.arguments(AccountConsentGrantSchema)
def grant_consent(body: dict[str, Any]) -> tuple[Any, int]:
    """Consent to the privacy terms (current version), or separately to trips for one scenario."""
    if body["kind"] == "privacy":
        consent, created = service.grant_privacy_consent(g.citizen_id, body["terms_version"])
    else:
        consent, created = service.grant_trajectory_consent(g.citizen_id, body["scenario_code"])
    return consent, 201 if created else 200


@blp.delete("/me/consents/<id:consent_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, AccountConsentSchema)
@citizen_required
def withdraw_consent(consent_id: int) -> Any:
    """Withdraw a consent; recording and crediting under it stop at once."""
    return service.withdraw_consent(g.citizen_id, consent_id)
