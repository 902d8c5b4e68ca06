"""New behaviours without a deploy: an operator sets up a scenario on a filed methodology version.

The scenario starts as a `draft` (nothing reports to it: ingestion, self-declaration and crediting
only take `live` scenarios), is tried with the trial calculator on its own terms — `spec_for` and
`calculate()`, exactly what crediting runs — and is then published, which makes it `live`: listed by
`GET /api/v1/scenarios` and accepted by the ingestion API at once. Its terms are validated by the
seed files' own parser (`definitions.parse_scenario`) against the methodology version it uses, and
stored through `scenarios.service.add_scenario_version`, as `flask scenarios load` stores a seed.
Only a version a new scenario may use (filed, or a provisional seed; not retired) is accepted.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.audit.service import record as audit
from app.errors import AppError
from app.extensions import db
from scenarios import service as scenarios
from scenarios.definitions import DefinitionError, parse_methodology, parse_scenario
from scenarios.models import Methodology, Scenario, ScenarioVersion
from scenarios.registry.service import get as get_methodology
from scenarios.registry.service import usable_for_new_scenarios
from scenarios.registry.trial import run_samples

SCENARIO_KEYS = ("code", "name", "category", "points_per_gram", "cap", "data_sources", "self_declared",
                 "review_required", "trajectory_consent", "effective_from", "description")


def _not_found() -> AppError:
    return AppError("scenario_not_found", "No such scenario.", "未找到该场景。", 404)


def create_scenario(actor_id: int, body: dict[str, Any]) -> Scenario:
    """A draft scenario (version 1) on a filed methodology version; 400 with the parser's message if invalid."""
    methodology = get_methodology(body["methodology_id"])
    if not usable_for_new_scenarios(methodology):
        raise AppError("methodology_not_usable",
                       f"Methodology {methodology.code} v{methodology.version} is {methodology.status}: "
                       "only a filed version may back a new scenario.",
                       f"方法学 {methodology.code} v{methodology.version} 不可用于新场景：须为已备案版本。",
                       409)
    raw = {key: body[key] for key in SCENARIO_KEYS} | {"version": 1}
    try:
        doc = parse_scenario(raw, parse_methodology(methodology.definition))
    except DefinitionError as error:
        raise AppError("invalid_scenario", f"The scenario is not valid: {error}", f"场景设置无效：{error}", 400,
                       details={"problem": str(error)}) from None
    scenario = Scenario(code=doc.code, category=doc.category, status="draft")
    try:
        with db.session.begin_nested():
            db.session.add(scenario)
    except IntegrityError:
        raise AppError("scenario_code_taken", f"A scenario with the code {doc.code} exists.",
                       f"场景编号 {doc.code} 已被使用。", 409) from None
    version = scenarios.add_scenario_version(scenario, methodology, doc)
    audit("scenario.drafted", actor_type="staff", actor_id=actor_id, object_type="scenario", object_id=scenario.id,
          details={"code": doc.code, "version": version.version, "methodology": methodology.code,
                   "methodology_version": methodology.version})
    return scenario


def publish(actor_id: int, scenario_id: int) -> Scenario:
    """draft → live: from now on the catalogue lists it and partners' events for it are accepted."""
    scenario = db.session.get(Scenario, scenario_id, with_for_update=True, populate_existing=True)
    if scenario is None:
        raise _not_found()
    if scenario.status != "draft":
        raise AppError("scenario_wrong_status", f"This scenario is {scenario.status}; only a draft is published.",
                       "只能发布草稿状态的场景。", 409, details={"status": scenario.status})
    scenario.status = "live"
    db.session.flush()
    audit("scenario.published", actor_type="staff", actor_id=actor_id, object_type="scenario",
          object_id=scenario.id, details={"code": scenario.code})
    return scenario


def _latest_version(scenario_id: int) -> ScenarioVersion:
    version = db.session.scalars(
        select(ScenarioVersion).where(ScenarioVersion.scenario_id == scenario_id)
        .order_by(ScenarioVersion.version.desc()).limit(1)
    ).first()
    if version is None:
        raise _not_found()
    return version


def trial(scenario_id: int, activities: list[dict[str, Any]]) -> dict[str, Any]:
    """试算 on the scenario's own latest terms: the spec crediting builds (`spec_for`), then `calculate()`."""
    if db.session.get(Scenario, scenario_id) is None:
        raise _not_found()
    version = _latest_version(scenario_id)
    return {"scenario_id": scenario_id, "scenario_version": version.version,
            **run_samples(scenarios.spec_for(version), activities)}


def detail(scenario_id: int) -> dict[str, Any]:
    scenario = db.session.get(Scenario, scenario_id)
    if scenario is None:
        raise _not_found()
    version = _latest_version(scenario_id)
    methodology = db.session.get(Methodology, version.methodology_id)
    assert methodology is not None
    terms = scenarios.scenario_json(version, scenario.code, scenario.category)
    return {
        "id": scenario.id, "code": scenario.code, "category": scenario.category, "status": scenario.status,
        "version": version.version, "name": version.name, "description": version.description,
        "points_per_gram": terms["points_per_gram"], "cap": terms["cap"], "data_sources": terms["data_sources"],
        "self_declared": version.self_declared, "review_required": version.review_required,
        "trajectory_consent": version.trajectory_consent, "effective_from": version.effective_from,
        "methodology": {"id": methodology.id, "code": methodology.code, "version": methodology.version,
                        "status": methodology.status, "filing_number": methodology.filing_number,
                        "formula": methodology.definition["formula"]},
    }
