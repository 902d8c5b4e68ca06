"""The methodology registry: an operator drafts, a different person reviews, an admin files (备案).

Workflow of one version (its `status`):

    draft → submitted → approved → filed → retired
              ↓   ↑
            returned (changes asked; the operator edits and submits again)

Nobody reviews a version they drafted, edited or submitted. Filing gives the next number of the year
(`SHCI-M-2026-001`) from a counter bumped by one atomic upsert, so two admins filing at once get two
numbers. A filed (or seed, or retired) version is never changed: `revise` copies it into a new draft
version, which goes through the same steps. Retiring a version keeps the row (scenarios that used it
stay explainable) but no new scenario may use it (`usable_for_new_scenarios`).

The engine's document is checked by `scenarios.definitions.parse_methodology` — the very parser
crediting uses — so a formula or parameter the engine cannot run is refused here with its message.
Every step is a `methodology_decisions` row and an audit row. Services flush; the boundary commits.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.audit.service import record as audit
from app.errors import AppError
from app.extensions import db
from app.models_base import utcnow
from app.pagination import decode_cursor, page
from app.staff.models import StaffUser
from scenarios.definitions import DefinitionError, methodology_to_json, parse_methodology
from scenarios.models import Methodology
from scenarios.registry.models import MethodologyDecision

SHANGHAI = ZoneInfo("Asia/Shanghai")
EDITABLE = ("draft", "returned")
OPEN = ("draft", "submitted", "returned", "approved")
RETIRABLE = ("filed", "provisional")
# What `revise` may start from: a version nobody is working on any more.
REVISABLE = ("filed", "provisional", "retired")
REVIEW_DECISIONS = ("comment", "request_changes", "approve")
CO_BENEFIT_KEYS = ("nox", "pm25")
# Definition keys the registry takes from a request (the engine document minus version and status).
DOCUMENT_KEYS = ("code", "type", "title", "note", "fields", "parameters", "formula", "data_requirements")


def _error(code: str, message: str, message_zh: str, status: int) -> AppError:
    return AppError(code, message, message_zh, status)


def _not_found() -> AppError:
    return _error("methodology_not_found", "No such methodology version.", "未找到该方法学版本。", 404)


def _wrong_status(methodology: Methodology, allowed: tuple[str, ...]) -> AppError:
    return AppError(
        "methodology_wrong_status",
        f"This version is {methodology.status}; this step needs it to be {' or '.join(allowed)}.",
        f"该版本当前状态为“{methodology.status}”，此操作要求状态为“{'或'.join(allowed)}”。",
        409,
        details={"status": methodology.status},
    )


def _checked_definition(body: dict[str, Any], version: int) -> dict[str, Any]:
    """The engine document for `body`, validated by the engine's own parser; its JSON form is stored.

    The document's own `status` says its values are filed ones; where the version stands in the
    workflow is the row's status."""
    raw: dict[str, Any] = {key: body[key] for key in DOCUMENT_KEYS if body.get(key) is not None}
    raw["version"] = version
    raw["status"] = "filed"
    try:
        return methodology_to_json(parse_methodology(raw))
    except DefinitionError as error:
        raise AppError(
            "invalid_methodology",
            f"The methodology is not valid: {error}",
            f"方法学内容无效：{error}",
            400,
            details={"problem": str(error)},
        ) from None


def _decide(methodology: Methodology, actor_id: int, action: str, from_status: str | None,
            comment: str | None = None) -> None:
    db.session.add(MethodologyDecision(methodology_id=methodology.id, actor_id=actor_id, action=action,
                                       from_status=from_status, to_status=methodology.status, comment=comment))
    db.session.flush()
    details: dict[str, Any] = {"code": methodology.code, "version": methodology.version,
                               "from": from_status, "to": methodology.status}
    if methodology.filing_number and action == "filed":
        details["filing_number"] = methodology.filing_number
    audit(f"methodology.{action}", actor_type="staff", actor_id=actor_id, object_type="methodology",
          object_id=methodology.id, details=details)


def _open_version_taken(code: str) -> AppError:
    return _error("methodology_open_version_exists",
                  f"Version work on {code} is already under way; finish or file it first.",
                  f"方法学 {code} 已有正在编辑或审核中的版本，请先完成该版本。", 409)


def create_draft(actor_id: int, body: dict[str, Any]) -> Methodology:
    """A new methodology (version 1) as a draft; an existing code is revised instead (409)."""
    code = body.get("code")
    if isinstance(code, str) and db.session.scalars(select(Methodology.id).where(Methodology.code == code)).first():
        raise _error("methodology_code_taken",
                     f"{code} exists already: revise its latest version instead of drafting it again.",
                     f"方法学编号 {code} 已存在，请在其最新版本上修订。", 409)
    definition = _checked_definition(body, 1)
    methodology = Methodology(
        code=definition["code"], version=1, type=definition["type"], title=definition["title"], status="draft",
        definition=definition, author_id=actor_id, co_benefits=_co_benefits(body), documents=_documents(body),
    )
    try:
        with db.session.begin_nested():
            db.session.add(methodology)
    except IntegrityError:  # the same code drafted concurrently
        raise _open_version_taken(definition["code"]) from None
    _decide(methodology, actor_id, "drafted", None)
    return methodology


def _co_benefits(body: dict[str, Any]) -> dict[str, Any]:
    """{"nox": {"value": "0.12", "unit": "g/km", "source": ...}, "pm25": {...}}: only those known."""
    result: dict[str, Any] = {}
    for key in CO_BENEFIT_KEYS:
        factor = (body.get("co_benefits") or {}).get(key)
        if factor:
            result[key] = {"value": format(factor["value"], "f"), "unit": factor["unit"], "source": factor["source"]}
    return result


def _documents(body: dict[str, Any]) -> list[dict[str, str]]:
    return [{"title": item["title"], "reference": item["reference"]} for item in body.get("documents") or []]


def _locked(methodology_id: int) -> Methodology:
    methodology = db.session.get(Methodology, methodology_id, with_for_update=True, populate_existing=True)
    if methodology is None:
        raise _not_found()
    return methodology


def edit_draft(actor_id: int, methodology_id: int, body: dict[str, Any]) -> Methodology:
    """Replace a draft's (or returned version's) content; the code stays the version's own."""
    methodology = _locked(methodology_id)
    if methodology.status not in EDITABLE:
        raise _wrong_status(methodology, EDITABLE)
    if body.get("code") not in (None, methodology.code):
        raise _error("methodology_code_fixed", "A version keeps its methodology's code.",
                     "方法学版本的编号不可更改。", 400)
    definition = _checked_definition({**body, "code": methodology.code}, methodology.version)
    methodology.definition = definition
    methodology.type = definition["type"]
    methodology.title = definition["title"]
    methodology.co_benefits = _co_benefits(body)
    methodology.documents = _documents(body)
    methodology.updated_at = utcnow()
    _decide(methodology, actor_id, "edited", methodology.status)
    return methodology


def submit(actor_id: int, methodology_id: int) -> Methodology:
    methodology = _locked(methodology_id)
    if methodology.status not in EDITABLE:
        raise _wrong_status(methodology, EDITABLE)
    before, methodology.status = methodology.status, "submitted"
    methodology.updated_at = utcnow()
    _decide(methodology, actor_id, "submitted", before)
    return methodology


def contributors(methodology_id: int) -> set[int]:
    """Who drafted, edited, submitted or revised this version: none of them may review it."""
    rows = db.session.scalars(
        select(MethodologyDecision.actor_id).where(
            MethodologyDecision.methodology_id == methodology_id,
            MethodologyDecision.action.in_(("drafted", "edited", "submitted", "revised")),
        )
    )
    return set(rows)


def is_own(staff_id: int, methodology: Methodology) -> bool:
    """Whether this staff member drafted or worked on the version (and so may not review it)."""
    return staff_id == methodology.author_id or staff_id in contributors(methodology.id)


def review(actor_id: int, methodology_id: int, decision: str, comment: str | None) -> Methodology:
    """A reviewer comments, asks for changes (back to the operator) or approves; never their own work."""
    if decision not in REVIEW_DECISIONS:
        raise _error("invalid_decision", f"The decision must be one of: {', '.join(REVIEW_DECISIONS)}.",
                     "审核决定须为 comment、request_changes 或 approve。", 400)
    comment = (comment or "").strip() or None
    if decision in ("comment", "request_changes") and comment is None:
        raise _error("comment_required", "Say what should change (a comment is required).",
                     "请填写审核意见。", 400)
    methodology = _locked(methodology_id)
    if methodology.status != "submitted":
        raise _wrong_status(methodology, ("submitted",))
    if is_own(actor_id, methodology):
        raise _error("own_methodology", "Nobody reviews their own methodology: another reviewer must.",
                     "不能审核自己起草或修改的方法学，请由其他审核人审核。", 403)
    before = methodology.status
    if decision == "request_changes":
        methodology.status = "returned"
    elif decision == "approve":
        methodology.status = "approved"
    methodology.updated_at = utcnow()
    action = {"comment": "commented", "request_changes": "changes_requested", "approve": "approved"}[decision]
    _decide(methodology, actor_id, action, before, comment)
    return methodology


def next_filing_number(at: datetime | None = None) -> str:
    """SHCI-M-<year>-<nnn>: the year's counter bumped in one statement (the row lock serialises filers)."""
    year = (at or utcnow()).astimezone(SHANGHAI).year
    number = db.session.execute(
        text(
            "INSERT INTO methodology_filing_counters (year, last) VALUES (:year, 1) "
            "ON CONFLICT (year) DO UPDATE SET last = methodology_filing_counters.last + 1 RETURNING last"
        ),
        {"year": year},
    ).scalar_one()
    return f"SHCI-M-{year}-{number:03d}"


def file_version(actor_id: int, methodology_id: int, comment: str | None = None) -> Methodology:
    """An admin files an approved version (备案): it gets its filing number and may now be used."""
    methodology = _locked(methodology_id)
    if methodology.status != "approved":
        raise _wrong_status(methodology, ("approved",))
    now = utcnow()
    methodology.filing_number = next_filing_number(now)
    methodology.status = "filed"
    methodology.filed_at = methodology.updated_at = now
    _decide(methodology, actor_id, "filed", "approved", (comment or "").strip() or None)
    return methodology


def retire(actor_id: int, methodology_id: int, reason: str) -> Methodology:
    """No new scenario may use this version; scenarios that did keep pointing at it (history stays)."""
    if not reason.strip():
        raise _error("comment_required", "Say why the version is retired.", "请填写停用原因。", 400)
    methodology = _locked(methodology_id)
    if methodology.status not in RETIRABLE:
        raise _wrong_status(methodology, RETIRABLE)
    before, methodology.status = methodology.status, "retired"
    methodology.updated_at = utcnow()
    _decide(methodology, actor_id, "retired", before, reason.strip())
    return methodology


def revise(actor_id: int, methodology_id: int) -> Methodology:
    """A new draft version copied from a filed (seed, retired) one: every change after filing is a new version."""
    source = _locked(methodology_id)
    if source.status not in REVISABLE:
        raise _wrong_status(source, REVISABLE)
    latest = db.session.scalar(
        select(Methodology.version).where(Methodology.code == source.code).order_by(Methodology.version.desc()).limit(1)
    )
    version = (latest or source.version) + 1
    definition = {**source.definition, "version": version, "status": "filed"}
    methodology = Methodology(
        code=source.code, version=version, type=source.type, title=dict(source.title), status="draft",
        definition=definition, author_id=actor_id, co_benefits=dict(source.co_benefits or {}),
        documents=list(source.documents or []),
    )
    try:
        with db.session.begin_nested():
            db.session.add(methodology)
    except IntegrityError:
        raise _open_version_taken(source.code) from None
    _decide(methodology, actor_id, "revised", None, f"from version {source.version}")
    return methodology


def usable_for_new_scenarios(methodology: Methodology) -> bool:
    """Only a filed version (or a seed still provisional) may back a new scenario; retired ones may not."""
    return methodology.status in ("filed", "provisional")


def get(methodology_id: int) -> Methodology:
    methodology = db.session.get(Methodology, methodology_id)
    if methodology is None:
        raise _not_found()
    return methodology


def history(methodology_id: int) -> list[dict[str, Any]]:
    """Every decision on a version, oldest first, with who took it."""
    rows = db.session.execute(
        select(MethodologyDecision, StaffUser.display_name, StaffUser.login)
        .join(StaffUser, StaffUser.id == MethodologyDecision.actor_id)
        .where(MethodologyDecision.methodology_id == methodology_id)
        .order_by(MethodologyDecision.id)
    ).all()
    return [
        {"id": decision.id, "action": decision.action, "from_status": decision.from_status,
         "to_status": decision.to_status, "comment": decision.comment, "at": decision.at,
         "actor": {"id": decision.actor_id, "display_name": name, "login": login}}
        for decision, name, login in rows
    ]


def versions_of(code: str) -> list[Methodology]:
    return list(db.session.scalars(select(Methodology).where(Methodology.code == code).order_by(Methodology.version)))


def detail(methodology_id: int) -> dict[str, Any]:
    """A version with its full decision history and its sibling versions (what the console shows)."""
    methodology = get(methodology_id)
    return {
        **as_dict(methodology),
        "history": history(methodology.id),
        "versions": [{"id": item.id, "version": item.version, "status": item.status,
                      "filing_number": item.filing_number} for item in versions_of(methodology.code)],
    }


def as_dict(methodology: Methodology) -> dict[str, Any]:
    definition = methodology.definition
    return {
        "id": methodology.id, "code": methodology.code, "version": methodology.version, "type": methodology.type,
        "title": methodology.title, "status": methodology.status, "filing_number": methodology.filing_number,
        "note": definition.get("note"), "fields": definition["fields"], "parameters": definition["parameters"],
        "formula": definition["formula"], "data_requirements": definition["data_requirements"],
        "co_benefits": methodology.co_benefits or {}, "documents": methodology.documents or [],
        "author_id": methodology.author_id, "created_at": methodology.created_at,
        "updated_at": methodology.updated_at, "filed_at": methodology.filed_at,
        "usable_for_new_scenarios": usable_for_new_scenarios(methodology),
    }


def list_methodologies(cursor: str | None, limit: int, status: str | None = None,
                       code: str | None = None) -> dict[str, Any]:
    """Versions, newest first; filter by workflow status (e.g. submitted: the review queue) or code."""
    query = select(Methodology).order_by(Methodology.id.desc()).limit(limit + 1)
    after = decode_cursor(cursor, 1)
    if after is not None:
        if type(after[0]) is not int:
            raise AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)
        query = query.where(Methodology.id < after[0])
    if status is not None:
        query = query.where(Methodology.status == status)
    if code is not None:
        query = query.where(Methodology.code == code)
    result = page(list(db.session.scalars(query)), limit, key=lambda item: [item.id])
    return {"items": [as_dict(item) for item in result["items"]], "next_cursor": result["next_cursor"]}
