"""Object- and function-level authorisation, generated from the app's own routes (OWASP API1, API5).

BOLA: every /api/v1 route whose path names an object is classified here; citizen A (or partner A)
creates the object and citizen B (partner B) tries every method on its URL: never a 2xx, and A's
object is unchanged. A new route with a path parameter fails the test until it is classified.

Roles: every route called with no credentials is a 401 (except the public ones listed), partner
routes called with a citizen's bearer token are a 401, citizen routes called with only a partner's
signature are a 401, and the OpenAPI spec documents the same security for each operation.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from tests.auth.conftest import Providers, providers, signin, signin_app  # noqa: F401  (fixtures)
from tests.conftest import bearer_for, make_citizen
from tests.partners.helpers import PartnerCreds, bind_through_api, metro_event, new_partner

API = "/api/v1/"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Routes anyone may call (sign-in itself, and what the mini-app shows before sign-in).
PUBLIC = {
    "/api/v1/auth/wechat",
    "/api/v1/auth/alipay",
    "/api/v1/auth/suishenban",
    "/api/v1/auth/suishenban/authorize-url",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/scenarios",
    "/api/v1/scenarios/<string:code>",
    "/api/v1/partners",
    "/api/v1/districts",
    "/api/v1/privacy-terms",
    "/api/v1/openapi.json",
    "/api/v1/docs",
}
CITIZEN_PREFIX = "/api/v1/me"
PARTNER_PREFIX = "/api/v1/partner/"

# Every route with a path parameter, and what the parameter names.
CITIZEN_OBJECTS = {
    "/api/v1/me/consents/<id:consent_id>": "consent",
    "/api/v1/me/bindings/<id:binding_id>": "binding",
    "/api/v1/me/behaviours/<id:event_id>": "behaviour",
    # The provider name picks one of the caller's own identities: B naming "wechat" reaches B's.
    "/api/v1/me/identities/<string:provider>": "identity",
}
PARTNER_OBJECTS = {"/api/v1/partner/batches/<uuid:batch_id>": "batch"}
NOT_OWNED = {"/api/v1/scenarios/<string:code>": "the public scenario catalogue"}


def api_rules(app: Flask) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith(API)]


def methods_of(rule: Rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def role_of(rule: Rule) -> str:
    if rule.rule in PUBLIC:
        return "public"
    if rule.rule.startswith(CITIZEN_PREFIX):
        return "citizen"
    if rule.rule.startswith(PARTNER_PREFIX):
        return "partner"
    raise AssertionError(f"{rule.rule}: not classified as public, citizen or partner")


# A value of the right type for each kind of path parameter, where the test does not name one.
SAMPLES = {"RowIdConverter": 1, "UnicodeConverter": "wechat", "UUIDConverter": uuid.UUID(int=1)}


def sample_url(app: Flask, rule: Rule, values: dict[str, Any] | None = None) -> str:
    filled = {name: (values or {}).get(name, SAMPLES[type(rule._converters[name]).__name__])
              for name in rule.arguments}
    return app.url_map.bind("localhost").build(rule.endpoint, filled)


def openapi_path(rule: Rule) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def assert_error(response: Any, status: int) -> None:
    assert response.status_code == status, (response.request.method, response.request.path, response.get_json())
    error = response.get_json()["error"]
    assert error["code"] and error["message"] and error["message_zh"]


# ---- classification ---------------------------------------------------------------------------

def test_every_api_route_is_classified(app: Flask) -> None:
    """A new route fails here until it is named public or follows the /me, /partner/ convention,
    and a new path parameter until its owner is known (so the BOLA test below covers it)."""
    rules = api_rules(app)
    for rule in rules:
        role_of(rule)
    with_parameters = {rule.rule for rule in rules if rule.arguments}
    classified = set(CITIZEN_OBJECTS) | set(PARTNER_OBJECTS) | set(NOT_OWNED)
    assert with_parameters == classified


def test_the_spec_documents_each_operations_security(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    expected = {"public": [], "citizen": [{"bearerAuth": []}], "partner": [{"partnerSignature": []}]}
    for rule in api_rules(app):
        if rule.rule in ("/api/v1/openapi.json", "/api/v1/docs"):
            continue
        path = openapi_path(rule)
        for method in methods_of(rule):
            documented = spec["paths"][path][method.lower()].get("security")
            assert documented == expected[role_of(rule)], f"{method} {path}"


# ---- roles ------------------------------------------------------------------------------------

@pytest.fixture
def partner(db_session, starter_scenarios) -> PartnerCreds:
    creds = new_partner("metro")
    db_session.commit()
    return creds


def _call(app: Flask, client: FlaskClient, rule: Rule, method: str, **kwargs: Any) -> Any:
    body = {} if method in ("POST", "PUT", "PATCH", "DELETE") else None
    return client.open(sample_url(app, rule), method=method, json=body, **kwargs)


def test_without_credentials_only_public_routes_answer(app: Flask, client: FlaskClient, db_session) -> None:
    for rule in api_rules(app):
        for method in methods_of(rule):
            response = _call(app, client, rule, method)
            if role_of(rule) == "public":
                assert response.status_code != 401, f"{method} {rule.rule}"
            else:
                assert_error(response, 401)


def test_partner_routes_refuse_a_citizen_token(app: Flask, client: FlaskClient, db_session) -> None:
    bearer = bearer_for(make_citizen())
    for rule in api_rules(app):
        if role_of(rule) == "partner":
            for method in methods_of(rule):
                assert_error(_call(app, client, rule, method, headers=bearer), 401)


def test_citizen_routes_refuse_a_partner_signature(app: Flask, client: FlaskClient, partner: PartnerCreds) -> None:
    for rule in api_rules(app):
        if role_of(rule) == "citizen":
            for method in methods_of(rule):
                body = {} if method in ("POST", "PUT", "PATCH", "DELETE") else None
                assert_error(partner.call(client, method, sample_url(app, rule), body), 401)


# ---- BOLA -------------------------------------------------------------------------------------

@dataclass
class Owned:
    """Citizen A's objects (created through the API) and how to read them back as A."""

    bearer: dict[str, str]
    wechat_user: str  # the WeChat user A linked
    ids: dict[str, dict[str, Any]]  # route → path values naming A's object

    def snapshot(self, client: FlaskClient) -> dict[str, Any]:
        def items(path: str) -> Any:
            response = client.get(path, headers=self.bearer)
            assert response.status_code == 200
            return response.get_json()

        event_id = self.ids["/api/v1/me/behaviours/<id:event_id>"]["event_id"]
        return {
            "consents": items("/api/v1/me/consents"),
            "bindings": items("/api/v1/me/bindings"),
            "identities": items("/api/v1/me/identities"),
            "behaviour": items(f"/api/v1/me/behaviours/{event_id}"),
        }


@pytest.fixture
def citizen_a(signin: FlaskClient, providers: Providers, partner: PartnerCreds, db_session) -> Iterator[Owned]:  # noqa: F811
    user = "bola-" + uuid.uuid4().hex[:10]
    signed_in = signin.post("/api/v1/auth/suishenban", json={"code": providers.mint("suishenban", user)})
    assert signed_in.status_code == 200, signed_in.get_json()
    citizen_id = signed_in.get_json()["citizen"]["id"]
    bearer = {"Authorization": f"Bearer {signed_in.get_json()['access_token']}"}
    version = signin.get("/api/v1/privacy-terms").get_json()["version"]
    consent = signin.post("/api/v1/me/consents", json={"kind": "privacy", "terms_version": version}, headers=bearer)
    assert consent.status_code == 201
    linked = signin.post("/api/v1/me/identities/wechat", json={"code": providers.mint("wechat", user)},
                         headers=bearer)
    assert linked.status_code == 201
    assert bind_through_api(signin, partner, citizen_id, "bola-card-a").status_code == 201
    binding = signin.get("/api/v1/me/bindings", headers=bearer).get_json()["items"][0]
    declared = signin.post("/api/v1/me/behaviours", headers=bearer, json={
        "scenario": "paperless", "activity": {"item_type": "e_invoice", "document_number": "25312000000055555555"}})
    assert declared.status_code == 201, declared.get_json()
    yield Owned(bearer, user, {
        "/api/v1/me/consents/<id:consent_id>": {"consent_id": consent.get_json()["id"]},
        "/api/v1/me/bindings/<id:binding_id>": {"binding_id": binding["id"]},
        "/api/v1/me/behaviours/<id:event_id>": {"event_id": declared.get_json()["id"]},
        "/api/v1/me/identities/<string:provider>": {"provider": "wechat"},
    })


def test_citizen_b_cannot_touch_citizen_a_objects(
    app: Flask, signin: FlaskClient, providers: Providers, citizen_a: Owned, db_session  # noqa: F811
) -> None:
    citizen_b = bearer_for(make_citizen())
    before = citizen_a.snapshot(signin)
    for route in CITIZEN_OBJECTS:
        rules = [rule for rule in api_rules(app) if rule.rule == route]
        url = sample_url(app, rules[0], citizen_a.ids[route])
        for method in METHODS:
            routed = any(method in rule.methods for rule in rules)
            body = None
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                # For the identity: a fresh login code of A's WeChat user, the most B could hold.
                body = {"code": providers.mint("wechat", citizen_a.wechat_user)} if "provider" in route else {}
            response = signin.open(url, method=method, json=body, headers=citizen_b)
            assert not 200 <= response.status_code < 300, f"B: {method} {url} → {response.status_code}"
            allowed = {403, 404, 409} if "provider" in route else {403, 404}  # 409: linked elsewhere
            assert response.status_code in (allowed if routed else {405}), f"B: {method} {url}"
            assert_error(response, response.status_code)
    assert citizen_a.snapshot(signin) == before


def test_partner_b_cannot_read_partner_a_batches(client: FlaskClient, partner: PartnerCreds, db_session) -> None:
    other = new_partner("metro")
    db_session.commit()
    citizen = make_citizen(trajectory_scenarios=("metro_trip",))
    db_session.commit()
    assert bind_through_api(client, partner, citizen, "bola-card-batch").status_code == 201
    occurred = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    pushed = partner.push(client, [metro_event("bola-1", "bola-card-batch", occurred_at=occurred)])
    assert pushed.status_code == 202
    batch_id = pushed.get_json()["batch_id"]
    url = f"/api/v1/partner/batches/{batch_id}"
    mine = partner.call(client, "GET", url)
    assert mine.status_code == 200
    for method in METHODS:
        body = {} if method != "GET" else None
        response = other.call(client, method, url, body)
        assert response.status_code == (404 if method == "GET" else 405), f"partner B: {method} {url}"
        assert_error(response, response.status_code)
    assert partner.call(client, "GET", url).get_json() == mine.get_json()
