"""Property-based fuzzing of the whole API against its own OpenAPI spec (schemathesis 4, in-process WSGI).

Every operation is exercised past authentication, with the credentials its route's role needs
(tests/test_bola.py classifies the routes): citizen routes carry a real citizen's bearer token, staff
routes a staff admin's (an admin passes every staff role), merchant routes a merchant admin's (a
merchant with stores, whose staff member is that same citizen, so merchant mode starts), partner
routes are signed over the exact bytes sent (a fresh nonce per call), and sign-in routes talk to the
loopback provider doubles. The data they meet is committed, so the app's own
sessions see it. Checks on every response: no 5xx; every 4xx has our error body; every body and
content type matches what the spec documents for that status.

The spec itself must be valid OpenAPI 3.0 and list every /api/v1 route of the app.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from schemathesis.transport.wsgi import WSGI_TRANSPORT
from sqlalchemy import text

from app.extensions import db
from tests.auth.conftest import Providers, providers, signin_app  # noqa: F401  (fixtures)
from tests.conftest import bearer_as, bearer_for, make_citizen, truncate_all
from tests.partner_client import signed_headers
from tests.rewards.factories import make_merchant, make_merchant_staff, make_staff
from tests.test_bola import api_rules, openapi_path, role_of

SPEC = "/api/v1/openapi.json"
# Fixed, so CI runs the same cases every time; set FUZZ_SEED / FUZZ_EXAMPLES to explore further locally.
SEED = int(os.environ.get("FUZZ_SEED", "20260101"))
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
# Not part of the documented API: the spec itself and its browsable UI.
UNDOCUMENTED = {"/api/v1/openapi.json", "/api/v1/docs"}

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
        "phases": {"stateful": {"enabled": False}},
    }
)


@dataclass(frozen=True)
class World:
    citizen_id: int
    bearer: dict[str, str]
    key_id: str
    secret: str
    admin_id: int
    merchant_id: int
    merchant_admin_id: int
    headers: dict[str, dict[str, str]]  # role (test_bola.role_of) → bearer headers
    roles: dict[str, str]  # OpenAPI path → role


@pytest.fixture
def world(app: Flask, signin_app: Flask) -> Iterator[World]:  # noqa: F811
    """A citizen with privacy consent, the five scenarios, a partner with a secret and a binding, a
    staff admin, and a merchant (two stores, a second merchant) whose admin is the same citizen —
    committed, outside any app context, so each fuzzed request runs in its own as in production."""
    from app.partners.service import confirm_binding, create_partner, issue_binding_code
    from scenarios.service import load_directory

    with app.app_context():
        load_directory()
        citizen_id = make_citizen(privacy_consent=True, trajectory_scenarios=("metro_trip",))
        partner, key_id, secret = create_partner("st-metro", "metro", "测试地铁", "Test Metro")
        create_partner("st-invoice", "einvoice", "测试发票", "Test Invoices")
        code, _ = issue_binding_code(citizen_id, "st-metro")
        confirm_binding(partner, code, "card-0001")
        admin_id = make_staff("admin", login="fuzz-admin")
        merchant_id, store_ids = make_merchant()
        make_merchant(name_en="Other")
        merchant_admin_id, _ = make_merchant_staff(merchant_id, store_ids, "merchant_admin", citizen_id=citizen_id)
        make_merchant_staff(merchant_id, store_ids[:1])
        bearer = bearer_for(citizen_id)  # makes the first signing key: commit it too
        headers = {"public": {}, "partner": {}, "citizen": bearer,
                   "staff": bearer_as(f"staff:{admin_id}", "admin"),
                   "merchant": bearer_as(f"merchant_staff:{merchant_admin_id}", "merchant_admin")}
        roles = {openapi_path(rule): role_of(rule) for rule in api_rules(app)}
        db.session.commit()
        db.session.remove()
    try:
        yield World(citizen_id, bearer, key_id, secret, admin_id, merchant_id, merchant_admin_id, headers, roles)
    finally:
        with app.app_context():
            db.session.remove()
            truncate_all()


@pytest.fixture
def api_schema(app: Flask, world: World) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_wsgi(SPEC, app, config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")


@schemathesis.check
def error_has_our_shape(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                        case: schemathesis.Case) -> bool | None:
    """Every 4xx answers {"error": {"code", "message", "message_zh"}} (DESIGN §Errors)."""
    if 400 <= response.status_code < 500:
        try:
            body = json.loads(response.content)
        except ValueError:
            raise AssertionError(f"{response.status_code} without a JSON body: {response.content[:200]!r}") from None
        error = body.get("error") if isinstance(body, dict) else None
        assert isinstance(error, dict), f"{response.status_code} body is not our error shape: {body!r}"
        for key in ("code", "message", "message_zh"):
            assert isinstance(error.get(key), str) and error[key], f"error.{key} missing in {body!r}"
    return None


# Statuses each operation answered with its own method (not the unsupported-method probes).
STATUSES: dict[str, set[int]] = {}


@schemathesis.check
def record_status(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                  case: schemathesis.Case) -> bool | None:
    if case.method.upper() == case.operation.method.upper():
        STATUSES.setdefault(case.operation.label, set()).add(response.status_code)
    return None


def raw_body(case: schemathesis.Case) -> bytes | None:
    """The exact bytes the WSGI transport would send for this case (None: no body)."""
    if isinstance(case.body, NotSet):
        return None
    serialized = WSGI_TRANSPORT.serialize_case(case)
    if "json" in serialized:
        return json.dumps(serialized["json"]).encode()
    data = serialized.get("data")
    if data is None:
        return None
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes):
        return data
    return None  # multipart parts: not signable; the app answers these without a signature check


@schema.parametrize()
# Bounded by max_examples (about a minute in all), not by Hypothesis's speed heuristics; no example
# database, so every machine runs the same cases.
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_on_any_input(case: schemathesis.Case, app: Flask, world: World) -> None:
    restore(app, world)
    kwargs: dict[str, Any] = {}
    headers: dict[str, str] = {}
    role = world.roles[case.operation.path]
    if role == "partner":
        body = raw_body(case)
        headers = signed_headers(world.key_id, world.secret, body or b"")
        headers.pop("Content-Type")  # keep the case's own (coverage probes send odd ones)
        if body is not None:
            kwargs["data"] = body
    else:
        headers = dict(world.headers[role])
    response = case.call(headers=headers, **kwargs)
    case.validate_response(response, checks=[not_a_server_error, error_has_our_shape, response_schema_conformance,
                                             content_type_conformance, record_status])


def restore(app: Flask, world: World) -> None:
    """Undo what earlier cases did to the world that gates deeper code (a fuzzed DELETE of consent 1
    would otherwise turn every later declaration into a 403; a fuzzed PATCH could suspend the admin)."""
    with app.app_context():
        db.session.execute(text("UPDATE consents SET withdrawn_at = NULL WHERE citizen_id = :id"),
                           {"id": world.citizen_id})
        # A fuzzed suspension, demotion or removal of the callers themselves.
        db.session.execute(text("UPDATE staff_users SET status = 'active', role = 'admin' WHERE id = :id"),
                           {"id": world.admin_id})
        db.session.execute(text("UPDATE merchants SET status = 'active' WHERE id = :id"), {"id": world.merchant_id})
        db.session.execute(text("UPDATE merchant_staff SET status = 'removed' WHERE citizen_id = :c AND id <> :id"),
                           {"c": world.citizen_id, "id": world.merchant_admin_id})
        db.session.execute(text("UPDATE merchant_staff SET status = 'active', role = 'merchant_admin' "
                                "WHERE id = :id"), {"id": world.merchant_admin_id})
        db.session.commit()
        db.session.remove()


def test_fuzzing_got_past_authentication() -> None:
    """Every operation answered something other than 401 at least once, and each list a 2xx: the
    fuzzing above exercised the operations, not just the authentication in front of them."""
    if not STATUSES:
        pytest.skip("runs after test_api_never_fails_on_any_input")
    only_401 = sorted(label for label, statuses in STATUSES.items() if statuses <= {401})
    assert only_401 == [], STATUSES
    no_2xx = sorted(label for label, statuses in STATUSES.items()
                    if label.startswith("GET") and "{" not in label
                    and not any(200 <= status < 300 for status in statuses))
    assert no_2xx == [], STATUSES


# ---- the spec itself ----------------------------------------------------------------------------

def test_openapi_spec_is_valid_and_lists_every_route(app: Flask) -> None:
    spec = app.test_client().get(SPEC).get_json()
    loaded = schemathesis.openapi.from_dict(spec)
    loaded.validate()  # against the official OpenAPI 3.0 JSON Schema
    broken = [result.err() for result in loaded.get_all_operations() if not isinstance(result, Ok)]
    assert broken == [], "operations schemathesis cannot use"
    schemes = set(spec["components"]["securitySchemes"])
    operation_ids = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            if "operationId" in operation:
                operation_ids.append(operation["operationId"])
            for requirement in operation.get("security", []):
                assert set(requirement) <= schemes, f"{method} {path}: unknown security scheme"
            declared = {p["name"] for p in item.get("parameters", []) + operation.get("parameters", [])
                        if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), f"{method} {path}: path parameters"
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item
                  if method in ("get", "post", "put", "patch", "delete")}
    routed = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule in UNDOCUMENTED:
            continue
        path = rule.rule
        for converter in rule.arguments:
            path = _openapi_path(path, converter)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routed.add((path, method))
    assert routed - documented == set(), "routes missing from the OpenAPI spec"
    assert documented - routed == set(), "spec operations without a route"


def _openapi_path(rule: str, argument: str) -> str:
    return re.sub(rf"<(?:[a-z]+(?:\([^)]*\))?:)?{argument}>", f"{{{argument}}}", rule)
