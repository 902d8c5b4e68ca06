"""HTTP routes for the public scenario catalogue: parse, call the service, dump."""
from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.errors import not_found
from app.models_base import utcnow
from scenarios.catalogue import describe, describe_all
from scenarios.schemas import ScenarioListSchema, ScenarioOutSchema, ScenarioQuerySchema

blp = Blueprint("scenarios", __name__, description="Scenarios: what earns points, how much, and who reports it")

PUBLIC: list[dict[str, list[str]]] = []


@blp.get("/scenarios")
@blp.doc(security=PUBLIC)
@blp.arguments(ScenarioQuerySchema, location="query")
@blp.response(200, ScenarioListSchema)
def list_scenarios(_args: dict[str, Any]) -> dict[str, Any]:
    """Live scenarios with the terms in force now (zh and en)."""
    return {"items": describe_all(utcnow())}


@blp.get("/scenarios/<string:code>")
@blp.doc(security=PUBLIC)
@blp.response(200, ScenarioOutSchema)
def get_scenario(code: str) -> dict[str, Any]:
    """One live scenario with the terms in force now."""
    item = describe(code, utcnow())
    if item is None:
        raise not_found("scenario", "场景")
    return item
