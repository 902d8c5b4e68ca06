"""The trial calculator (试算): what sample activities would earn under a methodology version.

The numbers come from the very code that credits events: the version's stored definition and trial
scenario terms go through `definitions.spec_from_json` (as `scenarios.service.spec_for` does) and
each activity through `engine.calculate`; points follow `engine.points_for` on the running total of
one citizen's day, as crediting applies a fractional rate. Nothing is written.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.errors import AppError
from scenarios.definitions import DefinitionError, spec_from_json
from scenarios.engine import ActivityError, FormulaError, ScenarioSpec, calculate, points_for
from scenarios.registry.service import get

MAX_SAMPLES = 50


def _trial_scenario(points_per_gram: Decimal) -> dict[str, Any]:
    """Scenario terms for the trial only: no caps, every source; the rate is the one asked for."""
    return {
        "code": "trial", "version": 1, "name": {"zh": "试算", "en": "Trial"}, "category": "行",
        "points_per_gram": format(points_per_gram, "f"), "cap": {"unit": "events", "per_day": None, "per_month": None},
        "data_sources": [], "self_declared": True, "review_required": False, "trajectory_consent": False,
        "effective_from": "2026-01-01T00:00:00+08:00", "description": {"zh": "试算", "en": "Trial"},
    }


def trial(methodology_id: int, points_per_gram: Decimal, activities: list[dict[str, Any]]) -> dict[str, Any]:
    """Each sample's grams, exact value, points and formula trace, or why it would be rejected."""
    methodology = get(methodology_id)
    try:
        spec = spec_from_json(methodology.definition, _trial_scenario(points_per_gram))
    except DefinitionError as error:
        raise AppError("invalid_trial", f"The trial terms are not valid: {error}", f"试算条件无效：{error}",
                       400) from None
    return {
        "methodology_id": methodology.id, "code": methodology.code, "version": methodology.version,
        **run_samples(spec, activities),
    }


def run_samples(spec: ScenarioSpec, activities: list[dict[str, Any]]) -> dict[str, Any]:
    """The samples through `calculate(spec, …)` in order, as one citizen's day (no caps applied)."""
    if len(activities) > MAX_SAMPLES:
        raise AppError("too_many_samples", f"At most {MAX_SAMPLES} sample activities.",
                       f"试算最多{MAX_SAMPLES}条样例。", 400)
    results: list[dict[str, Any]] = []
    day_grams = 0
    for index, activity in enumerate(activities):
        try:
            calculation = calculate(spec, activity)
        except ActivityError as error:
            results.append({"index": index, "error": {"field": error.field, "reason": error.reason}})
            continue
        except FormulaError as error:
            results.append({"index": index, "error": {"field": "formula", "reason": str(error)}})
            continue
        points = points_for(spec.points_per_gram, day_grams, calculation.grams)
        day_grams += calculation.grams
        results.append({"index": index, "grams": calculation.grams, "exact": format(calculation.exact, "f"),
                        "points": points, "trace": calculation.trace})
    return {
        "formula": spec.formula, "points_per_gram": format(spec.points_per_gram, "f"), "results": results,
        "total_grams": sum(item.get("grams", 0) for item in results),
        "total_points": sum(item.get("points", 0) for item in results),
    }
