"""Console pages for setting up a scenario on a filed methodology: the form, the trial (试算), publishing.

The form becomes the API's JSON body and is loaded with the API's schema; the service is the API's.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g, redirect, render_template, request, url_for

from app.auth.guard import STAFF_ROLES
from app.console import bp, console_role
from app.console.methodologies import FORM_TEXT_MAX, load_with, yaml_list
from app.errors import AppError
from scenarios.definitions import CATEGORIES, DATA_SOURCES
from scenarios.registry import scenario_setup
from scenarios.registry import service as registry
from scenarios.registry.schemas import ScenarioDraftSchema, ScenarioTrialSchema
from scenarios.registry.service import SHANGHAI

SOURCE_NAMES = {"metro": "地铁", "bus": "公交", "bikeshare": "共享单车", "recycling": "回收", "einvoice": "电子发票"}


def _form_body(form: Any, methodology_id: int) -> dict[str, Any]:
    def text(name: str) -> str:
        return (form.get(name) or "").strip()[:FORM_TEXT_MAX]

    def number(name: str) -> str | None:
        return text(name) or None

    effective = text("effective_from")
    try:
        effective_from: str = datetime.fromisoformat(effective).replace(tzinfo=SHANGHAI).isoformat()
    except ValueError:
        effective_from = effective  # the schema says what is wrong with it
    return {
        "methodology_id": methodology_id, "code": text("code"), "category": text("category"),
        "name": {"zh": text("name_zh"), "en": text("name_en")},
        "description": {"zh": text("description_zh"), "en": text("description_en")},
        "points_per_gram": text("points_per_gram"),
        "cap": {"unit": text("cap_unit") or "events", "per_day": number("cap_per_day"),
                "per_month": number("cap_per_month")},
        "data_sources": [source for source in form.getlist("data_sources") if source],
        "self_declared": form.get("self_declared") == "on", "review_required": form.get("review_required") == "on",
        "trajectory_consent": form.get("trajectory_consent") == "on", "effective_from": effective_from,
    }


def _render_form(methodology: dict[str, Any], values: Any, problems: list[str], status: int = 200) -> Any:
    return render_template("console/scenarios/form.html", m=methodology, values=values, problems=problems,
                           categories=CATEGORIES, sources=DATA_SOURCES, source_names=SOURCE_NAMES), status


@bp.route("/scenarios/new", methods=["GET", "POST"])
@console_role("operator")
def scenario_new() -> Any:
    methodology_id = request.args.get("methodology_id", type=int)
    if methodology_id is None:
        raise AppError("methodology_not_found", "Choose a filed methodology first.", "请先选择已备案的方法学。", 404)
    methodology = registry.detail(methodology_id)
    if request.method == "GET":
        now = datetime.now(SHANGHAI).replace(second=0, microsecond=0, tzinfo=None)
        return _render_form(methodology, {"points_per_gram": "1", "cap_unit": "events",
                                          "effective_from": now.isoformat(timespec="minutes")}, [])
    problems: list[str] = []
    body = load_with(ScenarioDraftSchema(), _form_body(request.form, methodology_id), problems)
    if body is None:
        return _render_form(methodology, request.form, problems, 400)
    try:
        scenario = scenario_setup.create_scenario(g.staff.id, body)
    except AppError as error:
        return _render_form(methodology, request.form, [error.message_zh], error.status)
    return redirect(url_for("console.scenario_detail", scenario_id=scenario.id), code=303)


def _render_detail(scenario_id: int, activities: str | None = None, trial: dict[str, Any] | None = None,
                   problems: list[str] | None = None, status: int = 200) -> Any:
    from app.console.methodologies import sample_activities

    s = scenario_setup.detail(scenario_id)
    fields = registry.get(s["methodology"]["id"]).definition["fields"]
    return render_template("console/scenarios/detail.html", s=s, source_names=SOURCE_NAMES,
                           activities=activities if activities is not None else sample_activities(fields),
                           trial=trial, trial_problems=problems or []), status


@bp.get("/scenarios/<id:scenario_id>")
@console_role(*STAFF_ROLES)
def scenario_detail(scenario_id: int) -> Any:
    return _render_detail(scenario_id)


@bp.post("/scenarios/<id:scenario_id>/trial")
@console_role(*STAFF_ROLES)
def scenario_trial(scenario_id: int) -> Any:
    """试算 on this scenario's own terms (its points rate), by the calculate() crediting runs."""
    activities = (request.form.get("activities") or "")[:FORM_TEXT_MAX]
    problems: list[str] = []
    body = load_with(ScenarioTrialSchema(), {"activities": yaml_list(activities, "样例活动", problems)}, problems)
    if body is None:
        return _render_detail(scenario_id, activities, None, problems, 400)
    return _render_detail(scenario_id, activities, scenario_setup.trial(scenario_id, body["activities"]))


@bp.post("/scenarios/<id:scenario_id>/publish")
@console_role("operator")
def scenario_publish(scenario_id: int) -> Any:
    scenario_setup.publish(g.staff.id, scenario_id)
    return redirect(url_for("console.scenario_detail", scenario_id=scenario_id), code=303)
