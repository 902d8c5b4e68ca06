"""Console pages of the methodology registry, over the same service and schemas as its API.

A form is turned into the API's JSON body (fields and parameters are written as YAML, like the seed
files) and loaded with the API's schema, so a page and an API call are refused for the same reasons.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml
from flask import g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from app.auth.guard import STAFF_ROLES
from app.console import bp, console_role
from app.errors import AppError
from scenarios.registry import service
from scenarios.registry.schemas import STATUSES, MethodologyDraftSchema, TrialSchema
from scenarios.registry.service import SHANGHAI
from scenarios.registry.trial import trial

STATUS_NAMES = {"provisional": "暂行（种子）", "draft": "草稿", "submitted": "待审核", "returned": "退回修改",
                "approved": "已通过审核", "filed": "已备案", "retired": "已停用"}
ACTION_NAMES = {"drafted": "起草", "edited": "修改", "submitted": "提交审核", "commented": "评论",
                "changes_requested": "要求修改", "approved": "审核通过", "filed": "备案", "retired": "停用",
                "revised": "新建修订版本"}
FORM_TEXT_MAX = 20_000


@bp.app_template_filter("status_zh")
def _status_zh(status: str) -> str:
    return STATUS_NAMES.get(status, status)


@bp.app_template_filter("action_zh")
def _action_zh(action: str) -> str:
    return ACTION_NAMES.get(action, action)


@bp.app_template_filter("shanghai_time")
def _shanghai_time(at: datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


@bp.app_template_filter("as_yaml")
def _as_yaml(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False, default_flow_style=False) if value else ""


@bp.get("/methodologies")
@console_role(*STAFF_ROLES)
def methodology_list() -> str:
    status = request.args.get("status") or None
    if status not in (None, *STATUSES):
        status = None
    result = service.list_methodologies(request.args.get("cursor"), 50, status=status)
    return render_template("console/methodologies/list.html", page=result, status=status, statuses=STATUSES)


@bp.get("/methodologies/<id:methodology_id>")
@console_role(*STAFF_ROLES)
def methodology_detail(methodology_id: int) -> str:
    return _render_detail(methodology_id)


def _render_detail(methodology_id: int, trial_form: dict[str, str] | None = None,
                   trial_result: dict[str, Any] | None = None, problems: list[str] | None = None,
                   status: int = 200) -> Any:
    m = service.detail(methodology_id)
    form = trial_form or {"points_per_gram": "1", "activities": sample_activities(m["fields"])}
    return render_template("console/methodologies/detail.html", m=m,
                           own=service.is_own(g.staff.id, service.get(methodology_id)),
                           trial_form=form, trial=trial_result, trial_problems=problems or []), status


def sample_activities(declared: list[dict[str, Any]]) -> str:
    """A starting sample for the trial form: each required field at its minimum (or first allowed value)."""
    sample: dict[str, Any] = {}
    for field in declared:
        if not field.get("required"):
            continue
        if field.get("allowed"):
            sample[field["name"]] = field["allowed"][0]
        elif field["type"] in ("decimal", "integer"):
            sample[field["name"]] = field.get("max") or field.get("min") or "1"
    return yaml.safe_dump([sample], allow_unicode=True, default_flow_style=None, sort_keys=False) if sample else ""


@bp.post("/methodologies/<id:methodology_id>/trial")
@console_role(*STAFF_ROLES)
def methodology_trial(methodology_id: int) -> Any:
    """试算: the samples (YAML, one activity per item) through the same calculate() crediting uses."""
    form = {"points_per_gram": (request.form.get("points_per_gram") or "1").strip()[:32],
            "activities": (request.form.get("activities") or "")[:FORM_TEXT_MAX]}
    problems: list[str] = []
    activities = yaml_list(form["activities"], "样例活动", problems)
    body = load_with(TrialSchema(), {"points_per_gram": form["points_per_gram"], "activities": activities},
                      problems)
    if body is None:
        return _render_detail(methodology_id, form, None, problems, 400)
    result = trial(methodology_id, body["points_per_gram"], body["activities"])
    return _render_detail(methodology_id, form, result)


def yaml_list(text: str, label: str, problems: list[str]) -> list[Any]:
    if not text.strip():
        return []
    try:
        value = yaml.safe_load(text[:FORM_TEXT_MAX])
    except yaml.YAMLError as error:
        problems.append(f"{label}：YAML 格式错误（{str(error).splitlines()[0]}）")
        return []
    if not isinstance(value, list):
        problems.append(f"{label}：须为列表（每项以“- ”开头）")
        return []
    return value


def _form_body(form: Any) -> tuple[dict[str, Any], list[str]]:
    """The API body a form describes, and what is wrong with the form itself."""
    problems: list[str] = []

    def text(name: str) -> str:
        return (form.get(name) or "").strip()[:FORM_TEXT_MAX]

    def bilingual(prefix: str) -> dict[str, str] | None:
        zh, en = text(f"{prefix}_zh"), text(f"{prefix}_en")
        return {"zh": zh, "en": en} if zh or en else None

    body: dict[str, Any] = {
        "code": text("code"), "type": text("type"), "title": bilingual("title") or {"zh": "", "en": ""},
        "note": bilingual("note"), "formula": text("formula"),
        "data_requirements": bilingual("data_requirements") or {"zh": "", "en": ""},
        "fields": yaml_list(text("fields"), "活动字段", problems),
        "parameters": yaml_list(text("parameters"), "参数", problems),
    }
    co_benefits: dict[str, Any] = {}
    for key in ("nox", "pm25"):
        value, unit, source = text(f"{key}_value"), text(f"{key}_unit"), text(f"{key}_source")
        if value or unit or source:
            co_benefits[key] = {"value": value, "unit": unit, "source": source}
    body["co_benefits"] = co_benefits
    documents = []
    for line in text("documents").splitlines():
        if line.strip():
            title, _, reference = line.partition("|")
            documents.append({"title": title.strip(), "reference": reference.strip()})
    body["documents"] = documents
    return body, problems


def _load(body: dict[str, Any], problems: list[str]) -> dict[str, Any] | None:
    return load_with(MethodologyDraftSchema(), body, problems)


def load_with(schema: Any, body: dict[str, Any], problems: list[str]) -> dict[str, Any] | None:
    """The API's own schema loads the form's body, so a page refuses what the API refuses."""
    if problems:
        return None
    try:
        return schema.load(body)
    except ValidationError as error:
        problems.extend(_flatten(error.messages))
        return None


def _flatten(messages: Any, where: str = "") -> list[str]:
    if isinstance(messages, dict):
        return [line for key, value in messages.items() for line in _flatten(value, f"{where}{key}.")]
    if isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        return [f"{where.rstrip('.')}: {'; '.join(messages)}"]
    if isinstance(messages, list):
        return [line for item in messages for line in _flatten(item, where)]
    return [f"{where.rstrip('.')}: {messages}"]


def _form_values(m: dict[str, Any]) -> dict[str, str]:
    """A version's content as the form's fields (for editing)."""
    values = {"code": m["code"], "type": m["type"], "formula": m["formula"],
              "fields": _as_yaml(m["fields"]), "parameters": _as_yaml(m["parameters"])}
    for prefix in ("title", "note", "data_requirements"):
        for language in ("zh", "en"):
            values[f"{prefix}_{language}"] = (m.get(prefix) or {}).get(language, "")
    for key in ("nox", "pm25"):
        for part in ("value", "unit", "source"):
            values[f"{key}_{part}"] = (m["co_benefits"].get(key) or {}).get(part, "")
    values["documents"] = "\n".join(f"{doc['title']} | {doc['reference']}" for doc in m["documents"])
    return values


def _render_form(values: dict[str, Any], problems: list[str], methodology: dict[str, Any] | None,
                 status: int = 200) -> tuple[str, int]:
    return render_template("console/methodologies/form.html", values=values, problems=problems,
                           m=methodology), status


@bp.route("/methodologies/new", methods=["GET", "POST"])
@console_role("operator")
def methodology_new() -> Any:
    if request.method == "GET":
        return _render_form({"type": "personal"}, [], None)
    body, problems = _form_body(request.form)
    loaded = _load(body, problems)
    if loaded is None:
        return _render_form(request.form, problems, None, 400)
    try:
        methodology = service.create_draft(g.staff.id, loaded)
    except AppError as error:
        return _render_form(request.form, [error.message_zh], None, error.status)
    return redirect(url_for("console.methodology_detail", methodology_id=methodology.id), code=303)


@bp.route("/methodologies/<id:methodology_id>/edit", methods=["GET", "POST"])
@console_role("operator")
def methodology_edit(methodology_id: int) -> Any:
    current = service.detail(methodology_id)
    if current["status"] not in service.EDITABLE:
        raise AppError("methodology_wrong_status", "Only a draft or returned version can be edited.",
                       "只能修改草稿或退回修改的版本；已备案的版本请新建修订版本。", 409)
    if request.method == "GET":
        return _render_form(_form_values(current), [], current)
    body, problems = _form_body(request.form)
    body["code"] = current["code"]
    loaded = _load(body, problems)
    if loaded is None:
        return _render_form(request.form, problems, current, 400)
    try:
        service.edit_draft(g.staff.id, methodology_id, loaded)
    except AppError as error:
        return _render_form(request.form, [error.message_zh], current, error.status)
    return redirect(url_for("console.methodology_detail", methodology_id=methodology_id), code=303)


def _back(methodology_id: int) -> Response:
    return redirect(url_for("console.methodology_detail", methodology_id=methodology_id), code=303)


@bp.post("/methodologies/<id:methodology_id>/submit")
@console_role("operator")
def methodology_submit(methodology_id: int) -> Response:
    service.submit(g.staff.id, methodology_id)
    return _back(methodology_id)


@bp.post("/methodologies/<id:methodology_id>/review")
@console_role("reviewer")
def methodology_review(methodology_id: int) -> Response:
    decision = request.form.get("decision", "")
    service.review(g.staff.id, methodology_id, decision, (request.form.get("comment") or "")[:4000])
    return _back(methodology_id)


@bp.post("/methodologies/<id:methodology_id>/file")
@console_role("admin")
def methodology_file(methodology_id: int) -> Response:
    service.file_version(g.staff.id, methodology_id, (request.form.get("comment") or "")[:4000])
    return _back(methodology_id)


@bp.post("/methodologies/<id:methodology_id>/retire")
@console_role("admin")
def methodology_retire(methodology_id: int) -> Response:
    service.retire(g.staff.id, methodology_id, (request.form.get("reason") or "")[:4000])
    return _back(methodology_id)


@bp.post("/methodologies/<id:methodology_id>/revise")
@console_role("operator")
def methodology_revise(methodology_id: int) -> Response:
    methodology = service.revise(g.staff.id, methodology_id)
    return redirect(url_for("console.methodology_edit", methodology_id=methodology.id), code=303)
