"""HTTP routes of the methodology registry: parse, call the service, dump. The console uses the same service."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, STAFF_ROLES, role_required
from app.idempotency.service import IDEMPOTENCY_KEY_PARAMETER, idempotent
from scenarios.registry import scenario_setup, service
from scenarios.registry.schemas import (
    FileSchema,
    MethodologyDetailSchema,
    MethodologyDraftSchema,
    MethodologyListArgs,
    MethodologyPageSchema,
    RetireSchema,
    ReviewSchema,
    ScenarioDraftSchema,
    ScenarioTrialSchema,
    StaffScenarioOutSchema,
    StaffScenarioTrialOutSchema,
    TrialOutSchema,
    TrialSchema,
)
from scenarios.registry.trial import trial

blp = Blueprint("methodology_registry", __name__,
                description="Methodology registry: draft, review by another person, file (备案), version, retire")

_WRITE = {"security": BEARER_SECURITY, "parameters": [IDEMPOTENCY_KEY_PARAMETER]}


@blp.get("/staff/methodologies")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MethodologyPageSchema)
@role_required(*STAFF_ROLES)
@blp.arguments(MethodologyListArgs, location="query", as_kwargs=True)
def list_versions(cursor: str | None, limit: int, status: str | None, code: str | None) -> dict[str, Any]:
    """Methodology versions, newest first; `status=submitted` is the review queue."""
    return service.list_methodologies(cursor, limit, status=status, code=code)


@blp.post("/staff/methodologies/drafts")
@blp.doc(**_WRITE)
@role_required("operator")
@idempotent
@blp.response(201, MethodologyDetailSchema)
@blp.arguments(MethodologyDraftSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Draft a new methodology (version 1). An invalid formula or parameter is a 400 `invalid_methodology`."""
    return service.detail(service.create_draft(g.actor.id, body).id)


@blp.get("/staff/methodologies/<id:methodology_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, MethodologyDetailSchema)
@role_required(*STAFF_ROLES)
def get(methodology_id: int) -> dict[str, Any]:
    """One version with its full decision history and its sibling versions."""
    return service.detail(methodology_id)


@blp.put("/staff/methodologies/<id:methodology_id>/draft")
@blp.doc(**_WRITE)
@role_required("operator")
@idempotent
@blp.response(200, MethodologyDetailSchema)
@blp.arguments(MethodologyDraftSchema)
def edit(body: dict[str, Any], methodology_id: int) -> dict[str, Any]:
    """Replace the content of a draft or returned version (a filed one is revised instead: 409)."""
    return service.detail(service.edit_draft(g.actor.id, methodology_id, body).id)


@blp.post("/staff/methodologies/<id:methodology_id>/submit")
@blp.doc(**_WRITE)
@role_required("operator")
@idempotent
@blp.response(200, MethodologyDetailSchema)
def submit(methodology_id: int) -> dict[str, Any]:
    """Send a draft (or a returned version) for review."""
    return service.detail(service.submit(g.actor.id, methodology_id).id)


@blp.post("/staff/methodologies/<id:methodology_id>/review")
@blp.doc(**_WRITE)
@role_required("reviewer")
@idempotent
@blp.response(200, MethodologyDetailSchema)
@blp.arguments(ReviewSchema)
def review(body: dict[str, Any], methodology_id: int) -> dict[str, Any]:
    """Comment, ask for changes or approve a submitted version; 403 `own_methodology` for your own work."""
    return service.detail(service.review(g.actor.id, methodology_id, body["decision"], body["comment"]).id)


@blp.post("/staff/methodologies/<id:methodology_id>/file")
@blp.doc(**_WRITE)
@role_required("admin")
@idempotent
@blp.response(200, MethodologyDetailSchema)
@blp.arguments(FileSchema)
def file_version(body: dict[str, Any], methodology_id: int) -> dict[str, Any]:
    """File (备案) an approved version: it gets the year's next filing number, e.g. SHCI-M-2026-001."""
    return service.detail(service.file_version(g.actor.id, methodology_id, body["comment"]).id)


@blp.post("/staff/methodologies/<id:methodology_id>/retire")
@blp.doc(**_WRITE)
@role_required("admin")
@idempotent
@blp.response(200, MethodologyDetailSchema)
@blp.arguments(RetireSchema)
def retire(body: dict[str, Any], methodology_id: int) -> dict[str, Any]:
    """Retire a filed version: no new scenario may use it; existing ones stay explainable."""
    return service.detail(service.retire(g.actor.id, methodology_id, body["reason"]).id)


@blp.post("/staff/methodologies/<id:methodology_id>/revise")
@blp.doc(**_WRITE)
@role_required("operator")
@idempotent
@blp.response(201, MethodologyDetailSchema)
def revise(methodology_id: int) -> dict[str, Any]:
    """Start the next version of a filed (or seed, or retired) methodology as a draft copy of it."""
    return service.detail(service.revise(g.actor.id, methodology_id).id)


@blp.post("/staff/methodologies/<id:methodology_id>/trial")
@blp.doc(security=BEARER_SECURITY)
@role_required(*STAFF_ROLES)
@blp.response(200, TrialOutSchema)
@blp.arguments(TrialSchema)
def trial_calculation(body: dict[str, Any], methodology_id: int) -> dict[str, Any]:
    """Trial calculator (试算): what sample activities would earn, by the same `calculate()` that credits.

    Nothing is stored. A sample the engine would reject says which field and why."""
    return trial(methodology_id, body["points_per_gram"], body["activities"])


@blp.post("/staff/scenarios")
@blp.doc(**_WRITE)
@role_required("operator")
@idempotent
@blp.response(201, StaffScenarioOutSchema)
@blp.arguments(ScenarioDraftSchema)
def create_scenario(body: dict[str, Any]) -> dict[str, Any]:
    """Set up a scenario on a filed methodology version, as a draft (nothing is credited to it yet).

    409 `methodology_not_usable` for a draft or retired version; 400 `invalid_scenario` names the problem."""
    return scenario_setup.detail(scenario_setup.create_scenario(g.actor.id, body).id)


@blp.get("/staff/scenarios/<id:scenario_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, StaffScenarioOutSchema)
@role_required(*STAFF_ROLES)
def get_scenario(scenario_id: int) -> dict[str, Any]:
    """A scenario with its latest terms and the methodology version they use."""
    return scenario_setup.detail(scenario_id)


@blp.post("/staff/scenarios/<id:scenario_id>/trial")
@blp.doc(security=BEARER_SECURITY)
@role_required(*STAFF_ROLES)
@blp.response(200, StaffScenarioTrialOutSchema)
@blp.arguments(ScenarioTrialSchema)
def scenario_trial(body: dict[str, Any], scenario_id: int) -> dict[str, Any]:
    """试算 on the scenario's own terms, through the spec and `calculate()` crediting uses. Nothing is stored."""
    return scenario_setup.trial(scenario_id, body["activities"])


@blp.post("/staff/scenarios/<id:scenario_id>/publish")
@blp.doc(**_WRITE)
@role_required("operator")
@idempotent
@blp.response(200, StaffScenarioOutSchema)
def publish_scenario(scenario_id: int) -> dict[str, Any]:
    """Publish a draft scenario: it is listed by GET /api/v1/scenarios and accepted by ingestion at once."""
    return scenario_setup.detail(scenario_setup.publish(g.actor.id, scenario_id).id)
