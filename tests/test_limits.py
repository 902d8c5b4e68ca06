"""Resource limits and hostile input (OWASP API4, SECURITY §API abuse), generated from the spec.

Every operation is called with the credentials its route's role needs (tests/test_bola.py
classifies the routes): a citizen's token, a staff admin's token (an admin passes every staff
role), a merchant admin's token (a merchant with stores), a partner's signature, or none.

- A body one byte over MAX_CONTENT_LENGTH (4 MiB) is a 413 JSON error on every operation that takes
  a body, with valid credentials so the limit itself answers, not authentication.
- Every paginated list refuses one more than its page size (100; a batch status 1,000, documented)
  and forged cursors, with a 400.
- Input PostgreSQL or Python cannot hold (U+0000, lone surrogates, NaN, floats that overflow,
  5,000-digit integers, deep nesting, ids beyond BIGINT) is a 400 or 404, never a 500.
"""
from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.pagination import MAX_LIMIT
from app.parsing import MAX_JSON_DEPTH
from tests.conftest import bearer_as, bearer_for
from tests.partner_client import signed_headers
from tests.partners.helpers import PartnerCreds, metro_event, new_partner
from tests.rewards.factories import make_merchant, make_merchant_staff, make_staff
from tests.test_bola import api_rules, openapi_path, role_of

MAX_BODY = 4 * 1024 * 1024
# Lists whose page size is not MAX_LIMIT, and why.
PAGE_SIZE = {"/api/v1/partner/batches/{batch_id}": 1000}  # a 5,000-event batch in 5 pages (README)
# Lists that need another query argument before they answer a 200.
LIST_QUERY = {"/api/v1/leaderboards": "&district=huangpu"}  # the test citizen has no home district
NIL_BATCH = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def spec(app: Flask) -> dict[str, Any]:
    return app.test_client().get("/api/v1/openapi.json").get_json()


@pytest.fixture
def partner(db_session, starter_scenarios) -> PartnerCreds:
    creds = new_partner("metro")
    db_session.commit()
    return creds


@dataclass(frozen=True)
class Callers:
    """Headers for each role (tests/test_bola.py's role_of), and path values naming real objects."""

    headers: dict[str, dict[str, str]]
    values: dict[str, str]


@pytest.fixture
def callers(db_session) -> Callers:
    admin = make_staff("admin")
    merchant_id, store_ids = make_merchant()
    merchant_admin, citizen_id = make_merchant_staff(merchant_id, role="merchant_admin")
    callers = Callers(
        headers={"public": {}, "citizen": bearer_for(citizen_id), "staff": bearer_as(f"staff:{admin}", "admin"),
                 "merchant": bearer_as(f"merchant_staff:{merchant_admin}", "merchant_admin")},
        values={"merchant_id": str(merchant_id), "store_id": str(store_ids[0]), "provider": "wechat",
                "code": "metro_trip", "batch_id": NIL_BATCH, "year": "2026"},
    )
    db_session.commit()  # an error answer rolls the request's session back: keep these
    return callers


def concrete(path: str, values: dict[str, str] | None = None) -> str:
    """The path with its parameters filled in: the named values, else 1 (an id naming nothing)."""
    return re.sub(r"{(\w+)}", lambda m: (values or {}).get(m.group(1), "1"), path)


@pytest.fixture
def roles(app: Flask) -> dict[str, str]:
    """OpenAPI path → the role its route needs."""
    return {openapi_path(rule): role_of(rule) for rule in api_rules(app)}


@pytest.fixture
def send(client: FlaskClient, partner: PartnerCreds, callers: Callers, roles: dict[str, str]) -> Callable[..., Any]:
    """Send raw bytes to an operation (an OpenAPI path) with the credentials its route's role needs."""

    def _send(method: str, path: str, body: bytes | None, query: str = "",
              values: dict[str, str] | None = None) -> Any:
        raw = body if body is not None else b""
        role = roles[path]
        if role == "partner":
            headers = signed_headers(partner.key_id, partner.secret, raw)
        else:
            headers = {"Content-Type": "application/json", **callers.headers[role]}
            if method != "GET":  # point-moving POSTs insist on one; the others ignore it
                headers["Idempotency-Key"] = uuid.uuid4().hex
        url = concrete(path, {**callers.values, **(values or {})})
        return client.open(url + query, method=method, data=body, headers=headers)

    return _send


def operations(spec: dict[str, Any], predicate: Callable[[dict[str, Any]], bool]) -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, operation) for path, item in spec["paths"].items()
            for method, operation in item.items() if method != "parameters" and predicate(operation)]


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.path, response.get_json())
    error = response.get_json()["error"]
    assert error["message"] and error["message_zh"]
    if code is not None:
        assert error["code"] == code
    return error


# ---- body size --------------------------------------------------------------------------------

def test_a_body_over_4_mib_is_413_on_every_operation_that_takes_one(spec, send) -> None:
    with_body = operations(spec, lambda operation: "requestBody" in operation)
    assert len(with_body) >= 12
    oversized = b'{"x":"' + b"a" * (MAX_BODY + 1 - 8) + b'"}'
    assert len(oversized) == MAX_BODY + 1
    for method, path, _ in with_body:
        assert_error(send(method, path, oversized), 413, "payload_too_large")


def test_a_batch_of_exactly_4_mib_is_read(spec, send) -> None:
    padding = MAX_BODY - len(b'{"events":[],"x":""}')
    body = b'{"events":[],"x":"' + b"a" * padding + b'"}'
    assert len(body) == MAX_BODY
    response = send("POST", "/api/v1/partner/events:batch", body)
    assert_error(response, 400)  # read, signature checked, then refused for its content


# ---- pagination -------------------------------------------------------------------------------

def paginated(spec: dict[str, Any]) -> list[tuple[str, str, dict]]:
    """Every operation that takes a page size; those that take a cursor take a page size too."""
    def names(operation: dict[str, Any]) -> set[str]:
        return {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}

    found = operations(spec, lambda operation: "limit" in names(operation))
    assert not [path for _, path, op in operations(spec, lambda op: "cursor" in names(op)) if "limit" not in names(op)]
    assert {"/api/v1/me/ledger", "/api/v1/partner/batches/{batch_id}", "/api/v1/staff/users",
            "/api/v1/merchant/redemptions"} <= {path for _, path, _ in found}
    return found


def with_cursor(spec: dict[str, Any]) -> list[tuple[str, str, dict]]:
    return [op for op in paginated(spec) if any(p["name"] == "cursor" for p in op[2]["parameters"])]


@pytest.fixture
def batch_id(client: FlaskClient, partner: PartnerCreds) -> str:
    occurred = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    pushed = partner.push(client, [metro_event("limits-1", "nobody", occurred_at=occurred)])
    assert pushed.status_code == 202
    return pushed.get_json()["batch_id"]


def test_every_list_refuses_one_more_than_its_page_size(spec, send, batch_id) -> None:
    for method, path, operation in paginated(spec):
        limit = PAGE_SIZE.get(path, MAX_LIMIT)
        documented = next(p for p in operation["parameters"] if p["name"] == "limit")["schema"]
        assert (documented["maximum"], documented["minimum"]) == (limit, 1), f"{path}: set its page size"
        values = {"batch_id": batch_id}
        response = send(method, path, None, f"?limit={limit}{LIST_QUERY.get(path, '')}", values)
        assert response.status_code == 200, (path, response.get_json())
        for bad in (limit + 1, 0, -1, "1e3", "ten"):
            error = assert_error(send(method, path, None, f"?limit={bad}", values), 400, "validation_error")
            assert "limit" in error["details"]["fields"]["query"], path


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


FORGED_CURSORS = [
    "not-base64!",
    "A" * 513,
    _cursor({"a": 1}),
    _cursor([1, 2, 3]),
    _cursor([None, None]),
    _cursor(["2026-01-01T00:00:00+00:00", 10**30]),
    _cursor([10**30, 10**30]),
    _cursor(["\u0000", 1]),
    _cursor(["x" * 65, 1]),
    _cursor(["2026-01-01T00:00:00+00:00", "not-an-id"]),
    _cursor([[1], {"a": 1}]),
    _cursor([1.5, 2.5]),
]


@pytest.mark.parametrize("cursor", FORGED_CURSORS, ids=range(len(FORGED_CURSORS)))
def test_a_forged_cursor_is_400_on_every_list(spec, send, batch_id, cursor) -> None:
    for method, path, _ in with_cursor(spec):
        response = send(method, path, None, f"?cursor={cursor}", {"batch_id": batch_id})
        assert response.status_code == 400, (path, response.get_json())


# ---- hostile JSON and ids ---------------------------------------------------------------------

HOSTILE_BODIES = {
    "U+0000": b'{"code": "ab\\u0000cd"}',
    "U+0000 after an escaped backslash": rb'{"code": "ab\\\u0000"}',
    "lone surrogate": b'{"code": "ab\\udc00cd"}',
    "lone surrogate in a key": b'{"\\ud800": 1, "code": "abcd"}',
    "NaN": b'{"code": NaN}',
    "Infinity": b'{"code": -Infinity}',
    "float overflow": b'{"code": 1e400}',
    "5,000 digits": b'{"code": 1' + b"0" * 5000 + b"}",
    "too deep": b'{"code": "x", "y": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}",
    "far too deep": b"[" * 100_000 + b"]" * 100_000,
    "not UTF-8": b'{"code": "\xff\xfe"}',
    "raw control character": b'{"code": "a\x00b"}',
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_json_the_database_cannot_hold_is_400_everywhere(spec, send, body) -> None:
    for method, path, _ in operations(spec, lambda operation: "requestBody" in operation):
        response = send(method, path, body)
        assert_error(response, 400, "validation_error")


def test_json_just_within_the_limits_reaches_the_schema_and_the_service(send) -> None:
    refresh = "/api/v1/auth/refresh"
    for text in (rb"\\u0000 spelled out", rb"\ud83c\udf33 a tree"):  # a backslash and "u0000"; a valid pair
        response = send("POST", refresh, b'{"refresh_token": "' + text + b'"}')
        assert_error(response, 401, "invalid_refresh_token")
    depth = MAX_JSON_DEPTH - 1  # the object itself is the first level
    nested = b'{"refresh_token": "x", "y": ' + b"[" * depth + b"]" * depth + b"}"
    fields = assert_error(send("POST", refresh, nested), 400, "validation_error")["details"]["fields"]
    assert fields == {"json": {"y": ["Unknown field."]}}
    fields = assert_error(send("POST", refresh, b'{"refresh_token": 1e300}'), 400)["details"]["fields"]
    assert fields == {"json": {"refresh_token": ["Not a valid string."]}}


def test_a_nul_in_the_query_string_is_400(send) -> None:
    response = send("GET", "/api/v1/me/behaviours", None, "?cursor=a%00b")
    assert_error(response, 400, "validation_error")


@pytest.mark.parametrize("ident", ["999999999", "0", str(2**63), "9" * 40])
def test_an_id_beyond_bigint_is_404(spec, send, ident: str) -> None:
    """Every id in a path, on every operation without a body, with the caller the route needs: an id
    naming nothing is a 404. One outside 1…2^63-1 matches no route: a 404, or a 405 where werkzeug
    finds another route on the same path (GET and POST registered separately)."""
    with_ids = operations(spec, lambda operation: "requestBody" not in operation)
    with_ids = [(method, path) for method, path, _ in with_ids if re.search(r"{\w+_id}", path)]
    assert len(with_ids) >= 10
    for method, path in with_ids:
        names = re.findall(r"{(\w+_id)}", path)
        response = send(method, path, None, values=dict.fromkeys(names, ident))
        in_range = ident == "999999999"
        assert response.status_code in ({404} if in_range else {404, 405}), (method, path, ident, response.get_json())
        code = response.get_json()["error"]["code"]
        assert code.endswith("not_found") or (not in_range and code == "method_not_allowed"), (method, path, code)
