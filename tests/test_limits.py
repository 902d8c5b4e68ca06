"""Resource limits and hostile input (OWASP API4, SECURITY §API abuse), generated from the spec.

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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.pagination import MAX_LIMIT
from app.parsing import MAX_JSON_DEPTH
from tests.conftest import bearer_for, make_citizen
from tests.partner_client import signed_headers
from tests.partners.helpers import PartnerCreds, metro_event, new_partner

MAX_BODY = 4 * 1024 * 1024
# Lists whose page size is not MAX_LIMIT, and why.
PAGE_SIZE = {"/api/v1/partner/batches/{batch_id}": 1000}  # a 5,000-event batch in 5 pages (README)


@pytest.fixture
def spec(app: Flask) -> dict[str, Any]:
    return app.test_client().get("/api/v1/openapi.json").get_json()


@pytest.fixture
def partner(db_session, starter_scenarios) -> PartnerCreds:
    creds = new_partner("metro")
    db_session.commit()
    return creds


@pytest.fixture
def send(client: FlaskClient, partner: PartnerCreds, db_session) -> Callable[..., Any]:
    """Send raw bytes to an operation with the credentials its documented security asks for."""
    bearer = bearer_for(make_citizen())
    db_session.commit()  # an error answer rolls the request's session back: keep these

    def _send(method: str, path: str, body: bytes | None, security: list[dict[str, Any]] | None,
              query: str = "") -> Any:
        raw = body if body is not None else b""
        if security == [{"partnerSignature": []}]:
            headers = signed_headers(partner.key_id, partner.secret, raw)
        else:
            headers = {"Content-Type": "application/json"}
            if security == [{"bearerAuth": []}]:
                headers |= bearer
        return client.open(path + query, method=method, data=body, headers=headers)

    return _send


def operations(spec: dict[str, Any], predicate: Callable[[dict[str, Any]], bool]) -> list[tuple[str, str, dict]]:
    return [(method.upper(), path, operation) for path, item in spec["paths"].items()
            for method, operation in item.items() if method != "parameters" and predicate(operation)]


def concrete(path: str, batch_id: str = "00000000-0000-4000-8000-000000000000") -> str:
    return (path.replace("{provider}", "wechat").replace("{consent_id}", "1").replace("{binding_id}", "1")
            .replace("{event_id}", "1").replace("{code}", "metro_trip").replace("{batch_id}", batch_id))


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
    for method, path, operation in with_body:
        assert_error(send(method, concrete(path), oversized, operation.get("security")), 413, "payload_too_large")


def test_a_batch_of_exactly_4_mib_is_read(spec, send) -> None:
    padding = MAX_BODY - len(b'{"events":[],"x":""}')
    body = b'{"events":[],"x":"' + b"a" * padding + b'"}'
    assert len(body) == MAX_BODY
    response = send("POST", "/api/v1/partner/events:batch", body, [{"partnerSignature": []}])
    assert_error(response, 400)  # read, signature checked, then refused for its content


# ---- pagination -------------------------------------------------------------------------------

def paginated(spec: dict[str, Any]) -> list[tuple[str, str, dict]]:
    found = operations(spec, lambda operation: any(p["name"] == "limit" for p in operation.get("parameters", [])))
    assert {path for _, path, _ in found} == {"/api/v1/me/ledger", "/api/v1/me/behaviours",
                                              "/api/v1/partner/batches/{batch_id}"}, "a new list: set its limit"
    return found


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
        assert documented["maximum"] == limit and documented["minimum"] == 1
        url, security = concrete(path, batch_id), operation.get("security")
        assert send(method, url, None, security, f"?limit={limit}").status_code == 200
        for bad in (limit + 1, 0, -1, "1e3", "ten"):
            error = assert_error(send(method, url, None, security, f"?limit={bad}"), 400, "validation_error")
            assert "limit" in error["details"]["fields"]["query"]


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
    for method, path, operation in paginated(spec):
        response = send(method, concrete(path, batch_id), None, operation.get("security"), f"?cursor={cursor}")
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
    for method, path, operation in operations(spec, lambda operation: "requestBody" in operation):
        response = send(method, concrete(path), body, operation.get("security"))
        assert_error(response, 400, "validation_error")


def test_json_just_within_the_limits_reaches_the_schema_and_the_service(send) -> None:
    refresh = "/api/v1/auth/refresh"
    for text in (rb"\\u0000 spelled out", rb"\ud83c\udf33 a tree"):  # a backslash and "u0000"; a valid pair
        response = send("POST", refresh, b'{"refresh_token": "' + text + b'"}', [])
        assert_error(response, 401, "invalid_refresh_token")
    depth = MAX_JSON_DEPTH - 1  # the object itself is the first level
    nested = b'{"refresh_token": "x", "y": ' + b"[" * depth + b"]" * depth + b"}"
    fields = assert_error(send("POST", refresh, nested, []), 400, "validation_error")["details"]["fields"]
    assert fields == {"json": {"y": ["Unknown field."]}}
    fields = assert_error(send("POST", refresh, b'{"refresh_token": 1e300}', []), 400)["details"]["fields"]
    assert fields == {"json": {"refresh_token": ["Not a valid string."]}}


def test_a_nul_in_the_query_string_is_400(send) -> None:
    response = send("GET", "/api/v1/me/behaviours", None, [{"bearerAuth": []}], "?cursor=a%00b")
    assert_error(response, 400, "validation_error")


@pytest.mark.parametrize("path", ["/api/v1/me/consents/{id}", "/api/v1/me/bindings/{id}", "/api/v1/me/behaviours/{id}"])
@pytest.mark.parametrize("ident", ["0", str(2**63), "9" * 40])
def test_an_id_beyond_bigint_is_404(client: FlaskClient, db_session, path: str, ident: str) -> None:
    bearer = bearer_for(make_citizen())
    db_session.commit()
    for method in ("GET", "DELETE"):
        response = client.open(path.replace("{id}", ident), method=method, headers=bearer)
        assert response.status_code in (404, 405)
        assert response.get_json()["error"]["code"] in ("not_found", "method_not_allowed")
