"""Scenarios in the database: loading the YAML seeds, the version in force, the engine spec.

Methodology and scenario versions are immutable rows: a changed file must carry a new
version number, and the new scenario version takes over from its effective_from on.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select

from app.audit.service import record as audit
from app.extensions import db
from scenarios import definitions
from scenarios.engine import ScenarioSpec
from scenarios.models import Methodology, Scenario, ScenarioVersion

SEED_DIRECTORY = Path(__file__).resolve().parent / "methodologies"
_spec_cache: dict[tuple[Any, ...], ScenarioSpec] = {}


@dataclass(frozen=True)
class LiveScenario:
    scenario: Scenario
    version: ScenarioVersion
    methodology: Methodology


def load_directory(path: Path | str | None = None) -> list[str]:
    """Load every seed file; insert what is new, leave existing versions untouched. Returns a report."""
    report: list[str] = []
    for doc in definitions.load_directory(path or SEED_DIRECTORY):
        methodology = _upsert_methodology(doc, report)
        for scenario_doc in doc.scenarios:
            _insert_scenario_version(scenario_doc, methodology, report)
    audit("scenarios.load", actor_type="system", details={"report": report})
    return report


def _upsert_methodology(doc: definitions.MethodologyDoc, report: list[str]) -> Methodology:
    definition = definitions.methodology_to_json(doc)
    existing = db.session.scalars(
        select(Methodology).where(Methodology.code == doc.code, Methodology.version == doc.version)
    ).first()
    if existing is not None:
        if existing.definition != definition:
            report.append(
                f"methodology {doc.code} v{doc.version}: the file differs from the stored version; "
                "versions are immutable — give the change a new version number (kept the stored one)"
            )
        else:
            report.append(f"methodology {doc.code} v{doc.version}: unchanged")
        return existing
    methodology = Methodology(
        code=doc.code,
        version=doc.version,
        type=doc.type,
        title=dict(doc.title),
        status=doc.status,
        definition=definition,
    )
    db.session.add(methodology)
    db.session.flush()
    report.append(f"methodology {doc.code} v{doc.version}: loaded ({doc.status})")
    return methodology


def _insert_scenario_version(doc: definitions.ScenarioDoc, methodology: Methodology, report: list[str]) -> None:
    scenario = scenario_by_code(doc.code)
    if scenario is None:
        scenario = Scenario(code=doc.code, category=doc.category, status="live")
        db.session.add(scenario)
        db.session.flush()
    exists = db.session.scalars(
        select(ScenarioVersion.id).where(
            ScenarioVersion.scenario_id == scenario.id, ScenarioVersion.version == doc.version
        )
    ).first()
    if exists is not None:
        report.append(f"scenario {doc.code} v{doc.version}: unchanged")
        return
    add_scenario_version(scenario, methodology, doc)
    report.append(f"scenario {doc.code} v{doc.version}: loaded, in force from {doc.effective_from.isoformat()}")


def add_scenario_version(
    scenario: Scenario, methodology: Methodology, doc: definitions.ScenarioDoc
) -> ScenarioVersion:
    """Insert a version; the version in force before its effective_from now ends there."""
    previous = db.session.scalars(
        select(ScenarioVersion)
        .where(
            ScenarioVersion.scenario_id == scenario.id,
            ScenarioVersion.effective_from < doc.effective_from,
            or_(ScenarioVersion.effective_to.is_(None), ScenarioVersion.effective_to > doc.effective_from),
        )
        .with_for_update()
    ).all()
    for version in previous:
        version.effective_to = doc.effective_from
    following = db.session.scalars(
        select(ScenarioVersion.effective_from)
        .where(ScenarioVersion.scenario_id == scenario.id, ScenarioVersion.effective_from > doc.effective_from)
        .order_by(ScenarioVersion.effective_from)
        .limit(1)
    ).first()
    version = ScenarioVersion(
        scenario_id=scenario.id,
        version=doc.version,
        methodology_id=methodology.id,
        name=dict(doc.name),
        description=dict(doc.description),
        definition=definitions.scenario_to_json(doc),
        points_per_gram=doc.points_per_gram,
        cap_unit=doc.cap_unit,
        cap_per_day=doc.cap_per_day,
        cap_per_month=doc.cap_per_month,
        data_sources=list(doc.data_sources),
        self_declared=doc.self_declared,
        review_required=doc.review_required,
        trajectory_consent=doc.trajectory_consent,
        effective_from=doc.effective_from,
        effective_to=following,
    )
    db.session.add(version)
    db.session.flush()
    return version


def scenario_by_code(code: str) -> Scenario | None:
    return db.session.scalars(select(Scenario).where(Scenario.code == code)).first()


def _in_force_at(at: datetime) -> Any:
    return and_(
        ScenarioVersion.effective_from <= at,
        or_(ScenarioVersion.effective_to.is_(None), ScenarioVersion.effective_to > at),
    )


def version_in_force(code: str, at: datetime) -> ScenarioVersion | None:
    """The version of a scenario whose terms applied at `at` (None before the first one)."""
    return db.session.scalars(
        select(ScenarioVersion)
        .join(Scenario, Scenario.id == ScenarioVersion.scenario_id)
        .where(Scenario.code == code, _in_force_at(at))
    ).first()


def live_versions_in_force(codes: set[str], at_min: datetime, at_max: datetime) -> dict[str, list[ScenarioVersion]]:
    """Versions of live scenarios overlapping [at_min, at_max], by scenario code (oldest first)."""
    rows = db.session.execute(
        select(Scenario.code, ScenarioVersion)
        .join(Scenario, Scenario.id == ScenarioVersion.scenario_id)
        .where(
            Scenario.code.in_(codes),
            Scenario.status == "live",
            ScenarioVersion.effective_from <= at_max,
            or_(ScenarioVersion.effective_to.is_(None), ScenarioVersion.effective_to > at_min),
        )
        .order_by(Scenario.code, ScenarioVersion.effective_from)
    ).all()
    result: dict[str, list[ScenarioVersion]] = {}
    for code, version in rows:
        result.setdefault(code, []).append(version)
    return result


def pick_version(versions: list[ScenarioVersion], at: datetime) -> ScenarioVersion | None:
    """From live_versions_in_force's list, the one in force at `at`."""
    for version in versions:
        if version.effective_from <= at and (version.effective_to is None or at < version.effective_to):
            return version
    return None


def scenario_json(version: ScenarioVersion, code: str, category: str) -> dict[str, Any]:
    """The scenario document as the engine reads it, from the version's columns (the source of truth)."""
    def number(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    return {
        "code": code,
        "version": version.version,
        "name": dict(version.name),
        "category": category,
        "points_per_gram": number(version.points_per_gram),
        "cap": {"unit": version.cap_unit, "per_day": number(version.cap_per_day),
                "per_month": number(version.cap_per_month)},
        "data_sources": list(version.data_sources),
        "self_declared": version.self_declared,
        "review_required": version.review_required,
        "trajectory_consent": version.trajectory_consent,
        "effective_from": version.effective_from.isoformat(),
        "description": dict(version.description or {"zh": "", "en": ""}),
    }


def spec_for(version: ScenarioVersion) -> ScenarioSpec:
    """The engine spec of a version, cached per version and its terms (rows are immutable in practice)."""
    scenario = db.session.get(Scenario, version.scenario_id)
    methodology = db.session.get(Methodology, version.methodology_id)
    assert scenario is not None and methodology is not None
    key = (
        version.id, version.points_per_gram, version.cap_unit, version.cap_per_day, version.cap_per_month,
        methodology.id,
    )
    spec = _spec_cache.get(key)
    if spec is None:
        document = scenario_json(version, scenario.code, scenario.category)
        spec = definitions.spec_from_json(methodology.definition, document)
        _spec_cache[key] = spec
    return spec


def live_scenarios(at: datetime) -> list[LiveScenario]:
    """Live scenarios with the version in force at `at`, for the public catalogue."""
    rows = db.session.execute(
        select(Scenario, ScenarioVersion, Methodology)
        .join(ScenarioVersion, ScenarioVersion.scenario_id == Scenario.id)
        .join(Methodology, Methodology.id == ScenarioVersion.methodology_id)
        .where(Scenario.status == "live", _in_force_at(at))
        .order_by(Scenario.id)
    ).all()
    return [LiveScenario(scenario, version, methodology) for scenario, version, methodology in rows]
