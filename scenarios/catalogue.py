"""The public description of live scenarios: what they pay, their caps and data sources."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.partners.models import Partner
from scenarios.service import LiveScenario, live_scenarios


def describe_all(at: datetime) -> list[dict[str, Any]]:
    live = live_scenarios(at)
    partners = _active_partners_by_kind()
    return [_describe(item, partners) for item in live]


def describe(code: str, at: datetime) -> dict[str, Any] | None:
    for item in live_scenarios(at):
        if item.scenario.code == code:
            return _describe(item, _active_partners_by_kind())
    return None


def _active_partners_by_kind() -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for partner in db.session.scalars(select(Partner).where(Partner.status == "active").order_by(Partner.code)):
        result.setdefault(partner.kind, []).append(
            {"code": partner.code, "name": {"zh": partner.name_zh, "en": partner.name_en}}
        )
    return result


def _describe(item: LiveScenario, partners: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    definition = item.methodology.definition
    version = item.version
    return {
        "code": item.scenario.code,
        "version": version.version,
        "category": item.scenario.category,
        "name": version.name,
        "description": version.description,
        "methodology": {
            "code": item.methodology.code,
            "version": item.methodology.version,
            "status": item.methodology.status,
            "filing_number": item.methodology.filing_number,
            "title": item.methodology.title,
            "note": definition.get("note"),
        },
        "formula": definition["formula"],
        "activity_fields": definition["fields"],
        "parameters": [_parameter(parameter) for parameter in definition["parameters"]],
        "points_per_gram": format(version.points_per_gram.normalize(), "f"),
        "caps": {
            "unit": version.cap_unit,
            "per_day": None if version.cap_per_day is None else format(version.cap_per_day.normalize(), "f"),
            "per_month": None if version.cap_per_month is None else format(version.cap_per_month.normalize(), "f"),
        },
        "data_sources": [{"kind": kind, "partners": partners.get(kind, [])} for kind in version.data_sources],
        "self_declared": version.self_declared,
        "review_required": version.review_required,
        "trajectory_consent": version.trajectory_consent,
        "effective_from": version.effective_from,
        "effective_to": version.effective_to,
    }


def _parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    """Every key present (a missing dict key would make marshmallow read dict attributes such as .values)."""
    return {
        "name": parameter["name"],
        "unit": parameter["unit"],
        "value": parameter.get("value"),
        "key_field": parameter.get("key_field"),
        "values": parameter.get("values"),
        "source": parameter["source"],
        "provisional": parameter["provisional"],
    }
