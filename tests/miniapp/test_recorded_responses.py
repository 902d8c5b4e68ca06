"""The API answers the mini-app's simulator tests replay (miniapp/tests/simulate/recorded.json) must
be what the real API can answer: each body is validated against the app's own openapi.json, for its
path, method and status (an undocumented status falls back to the spec's `default` error)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask

RECORDED = Path(__file__).resolve().parents[2] / "miniapp" / "tests" / "simulate" / "recorded.json"
ENTRIES = json.loads(RECORDED.read_text())["entries"]


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` is JSON Schema's `"null"` alternative (allOf/$ref included)."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@pytest.fixture(scope="module")
def spec(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _response_schema(spec: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    operation = spec["paths"][f"/api/v1{entry['path']}"][entry["method"].lower()]
    response = operation["responses"].get(str(entry["status"])) or operation["responses"]["default"]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"]["application/json"]["schema"]


def test_every_recorded_path_and_status_is_in_the_spec(spec: dict[str, Any]) -> None:
    assert len(ENTRIES) >= 10
    for entry in ENTRIES:
        assert f"/api/v1{entry['path']}" in spec["paths"], entry["name"]
        assert entry["url"].split("?")[0].count("/") == entry["path"].count("/"), entry["name"]
        operation = spec["paths"][f"/api/v1{entry['path']}"][entry["method"].lower()]
        assert str(entry["status"]) in operation["responses"] or entry["status"] >= 400, entry["name"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_recorded_body_matches_the_openapi_schema(spec: dict[str, Any], entry: dict[str, Any]) -> None:
    components = _nullable_to_json_schema(spec["components"]["schemas"])
    schema = {**_nullable_to_json_schema(_response_schema(spec, entry)), "components": {"schemas": components}}
    validator = jsonschema_rs.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(entry["body"])]
    assert errors == [], f"{entry['name']}: {errors}"


def test_a_drifted_body_is_caught(spec: dict[str, Any]) -> None:
    """The check has teeth: an unknown field or a wrong type fails."""
    entry = next(e for e in ENTRIES if e["name"] == "coupon qr 1")
    components = _nullable_to_json_schema(spec["components"]["schemas"])
    schema = {**_nullable_to_json_schema(_response_schema(spec, entry)), "components": {"schemas": components}}
    validator = jsonschema_rs.Draft7Validator(schema)
    assert not validator.is_valid({**entry["body"], "renamed_field": 1})
    assert not validator.is_valid({**entry["body"], "short_code": 83995942})
