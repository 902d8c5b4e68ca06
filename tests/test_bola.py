"""Object- and function-level authorisation, generated from the app's own routes (OWASP API1, API5).

BOLA: every /api/v1 route whose path names an object is classified here; citizen A (partner A,
merchant A) creates the object and citizen B (partner B, merchant B's admin) tries every method on
its URL: never a 2xx, and A's object is unchanged. A new route with a path parameter fails the test
until it is classified.

Roles: every route is public, citizen, partner, staff or merchant. With no credentials every
non-public route is a 401; a partner's signature alone is a 401 on every bearer route; a citizen's
token on partner routes is a 401. Each staff and merchant route names the token roles it lets
through (ROLES); every other role is a 403 "forbidden" there, and staff and merchant tokens are a
403 on citizen routes. The OpenAPI spec documents the same security for each operation.
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
from sqlalchemy import text
from werkzeug.routing import Rule

from app.notifications.service import record as record_notification
from tests.auth.conftest import Providers, providers, signin, signin_app  # noqa: F401  (fixtures)
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.partners.helpers import PartnerCreds, bind_through_api, metro_event, new_partner
from tests.rewards.factories import make_merchant, make_merchant_staff, make_staff
from tests.rewards.test_coupons_support import give_points, idem, make_offer

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
    "/api/v1/staff/session",  # staff sign-in with login and password
    "/api/v1/campaigns",  # the campaigns running now, shown before sign-in
}
CITIZEN_PREFIX = "/api/v1/me"
# Citizen routes outside /me: what a signed-in citizen browses, and a citizen acting on the way to
# becoming merchant staff (accepting an invitation, exchanging their token for a merchant one).
CITIZEN_ROUTES = {
    "/api/v1/offers",
    "/api/v1/offers/<id:offer_id>",
    "/api/v1/offers/<id:offer_id>/claim",
    "/api/v1/leaderboards",
    "/api/v1/merchant/session",
    "/api/v1/merchant/staff-invitations:accept",
}
PARTNER_PREFIX = "/api/v1/partner/"
STAFF_PREFIXES = ("/api/v1/staff/", "/api/v1/merchants")
MERCHANT_PREFIX = "/api/v1/merchant/"

# The token roles each staff and merchant route lets through (role_required's arguments; an admin
# also passes any staff role). Operators manage offers on a merchant's behalf (/merchant/offers).
STAFF_ROLES = ("operator", "reviewer", "admin")
MERCHANT_ROLES = ("merchant_staff", "merchant_admin")
ROLES: dict[str, tuple[str, ...]] = {
    "/api/v1/staff/me": STAFF_ROLES,
    "/api/v1/staff/users": ("admin",),
    "/api/v1/staff/users/<id:staff_id>": ("admin",),
    "/api/v1/staff/reversals": ("operator",),
    "/api/v1/staff/appeals": ("reviewer", "operator"),
    "/api/v1/staff/appeals/<id:appeal_id>/decision": ("reviewer", "operator"),
    "/api/v1/staff/campaigns": ("operator",),
    "/api/v1/staff/campaigns/<id:campaign_id>": ("operator",),
    "/api/v1/merchants": ("operator",),
    "/api/v1/merchants/<id:merchant_id>": ("operator",),
    "/api/v1/merchants/<id:merchant_id>/stores": ("operator",),
    "/api/v1/merchants/<id:merchant_id>/stores/<id:store_id>": ("operator",),
    "/api/v1/merchants/<id:merchant_id>/staff": ("operator",),
    "/api/v1/merchants/<id:merchant_id>/staff/<id:staff_id>": ("operator",),
    "/api/v1/merchants/<id:merchant_id>/staff-invitations": ("operator",),
    "/api/v1/merchant/me": MERCHANT_ROLES,
    "/api/v1/merchant/stores": MERCHANT_ROLES,
    "/api/v1/merchant/staff": ("merchant_admin",),
    "/api/v1/merchant/staff/<id:staff_id>": ("merchant_admin",),
    "/api/v1/merchant/staff-invitations": ("merchant_admin",),
    "/api/v1/merchant/offers": ("operator", "merchant_admin"),
    "/api/v1/merchant/offers/<id:offer_id>": ("operator", "merchant_admin"),
    "/api/v1/merchant/redemptions": MERCHANT_ROLES,
    "/api/v1/merchant/redemptions/<id:redemption_id>/undo": ("merchant_admin",),
    "/api/v1/merchant/settlement": ("merchant_admin",),
    "/api/v1/staff/methodologies": STAFF_ROLES,
    "/api/v1/staff/methodologies/drafts": ("operator",),
    "/api/v1/staff/methodologies/<id:methodology_id>": STAFF_ROLES,
    "/api/v1/staff/methodologies/<id:methodology_id>/draft": ("operator",),
    "/api/v1/staff/methodologies/<id:methodology_id>/submit": ("operator",),
    "/api/v1/staff/methodologies/<id:methodology_id>/review": ("reviewer",),
    "/api/v1/staff/methodologies/<id:methodology_id>/file": ("admin",),
    "/api/v1/staff/methodologies/<id:methodology_id>/retire": ("admin",),
    "/api/v1/staff/methodologies/<id:methodology_id>/revise": ("operator",),
    "/api/v1/staff/methodologies/<id:methodology_id>/trial": STAFF_ROLES,
    "/api/v1/staff/scenarios": ("operator",),
    "/api/v1/staff/scenarios/<id:scenario_id>": STAFF_ROLES,
    "/api/v1/staff/scenarios/<id:scenario_id>/trial": STAFF_ROLES,
    "/api/v1/staff/scenarios/<id:scenario_id>/publish": ("operator",),
}
TOKEN_ROLES = ("citizen", *STAFF_ROLES, *MERCHANT_ROLES)

# Every route with a path parameter, and what the parameter names.
CITIZEN_OBJECTS = {
    "/api/v1/me/consents/<id:consent_id>": "consent",
    "/api/v1/me/bindings/<id:binding_id>": "binding",
    "/api/v1/me/behaviours/<id:event_id>": "behaviour",
    # The provider name picks one of the caller's own identities: B naming "wechat" reaches B's.
    "/api/v1/me/identities/<string:provider>": "identity",
    "/api/v1/me/coupons/<id:coupon_id>": "coupon",
    "/api/v1/me/coupons/<id:coupon_id>/qr": "coupon",
    "/api/v1/me/coupons/<id:coupon_id>/cancel": "coupon",
    "/api/v1/me/notifications/<id:notification_id>/read": "notification",
}
PARTNER_OBJECTS = {"/api/v1/partner/batches/<uuid:batch_id>": "batch"}
# Routes a merchant's admin calls on the merchant's own objects: merchant B's admin tries A's.
MERCHANT_OBJECTS = {
    "/api/v1/merchant/offers/<id:offer_id>": "offer",
    "/api/v1/merchant/redemptions/<id:redemption_id>/undo": "redemption",
    "/api/v1/merchant/staff/<id:staff_id>": "merchant staff member",
}
OPERATOR_WIDE = "operator-wide: any operator (or admin) manages every one, no owner below them"
NOT_OWNED = {
    "/api/v1/scenarios/<string:code>": "the public scenario catalogue",
    "/api/v1/offers/<id:offer_id>": "the live-offer catalogue every citizen sees",
    "/api/v1/offers/<id:offer_id>/claim": "a live offer any citizen may claim; the coupon is the caller's own",
    "/api/v1/me/reports/<int:year>": "a year, not an object: the caller's own report for it",
    "/api/v1/me/reports/<int:year>/certificate.png": "a year, not an object: the caller's own certificate",
    "/api/v1/staff/users/<id:staff_id>": OPERATOR_WIDE + " (admins manage staff accounts)",
    "/api/v1/staff/campaigns/<id:campaign_id>": OPERATOR_WIDE,
    "/api/v1/staff/appeals/<id:appeal_id>/decision": "reviewer-wide: any reviewer or operator decides any appeal",
    "/api/v1/merchants/<id:merchant_id>": OPERATOR_WIDE,
    "/api/v1/merchants/<id:merchant_id>/stores": OPERATOR_WIDE,
    "/api/v1/merchants/<id:merchant_id>/stores/<id:store_id>": OPERATOR_WIDE,
    "/api/v1/merchants/<id:merchant_id>/staff": OPERATOR_WIDE,
    "/api/v1/merchants/<id:merchant_id>/staff/<id:staff_id>": OPERATOR_WIDE,
    "/api/v1/merchants/<id:merchant_id>/staff-invitations": OPERATOR_WIDE,
    "/api/v1/staff/methodologies/<id:methodology_id>": "registry-wide: every staff member reads every version",
    "/api/v1/staff/methodologies/<id:methodology_id>/draft": OPERATOR_WIDE,
    "/api/v1/staff/methodologies/<id:methodology_id>/submit": OPERATOR_WIDE,
    "/api/v1/staff/methodologies/<id:methodology_id>/review":
        "reviewer-wide: any reviewer but the version's own authors (refused by the service: own_methodology)",
    "/api/v1/staff/methodologies/<id:methodology_id>/file": "admin-wide: any admin files any approved version",
    "/api/v1/staff/methodologies/<id:methodology_id>/retire": "admin-wide: any admin retires any filed version",
    "/api/v1/staff/methodologies/<id:methodology_id>/revise": OPERATOR_WIDE,
    "/api/v1/staff/methodologies/<id:methodology_id>/trial": "registry-wide: a calculation, nothing is stored",
    "/api/v1/staff/scenarios/<id:scenario_id>": "registry-wide: every staff member reads every scenario",
    "/api/v1/staff/scenarios/<id:scenario_id>/trial": "registry-wide: a calculation, nothing is stored",
    "/api/v1/staff/scenarios/<id:scenario_id>/publish": OPERATOR_WIDE,
}


def api_rules(app: Flask) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith(API)]


def methods_of(rule: Rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def role_of(rule: Rule) -> str:
    if rule.rule in PUBLIC:
        return "public"
    if rule.rule == CITIZEN_PREFIX or rule.rule.startswith(CITIZEN_PREFIX + "/") or rule.rule in CITIZEN_ROUTES:
        return "citizen"
    if rule.rule.startswith(PARTNER_PREFIX):
        return "partner"
    if rule.rule.startswith(STAFF_PREFIXES):
        return "staff"
    if rule.rule.startswith(MERCHANT_PREFIX):
        return "merchant"
    raise AssertionError(f"{rule.rule}: not classified as public, citizen, partner, staff or merchant")


def role_allows(route: str, role: str) -> bool:
    """Whether role_required lets a token with `role` through on a staff or merchant route."""
    roles = ROLES[route]
    return role in roles or (role == "admin" and any(r in STAFF_ROLES for r in roles))


# A value of the right type for each kind of path parameter, where the test does not name one.
SAMPLES = {"RowIdConverter": 1, "UnicodeConverter": "wechat", "UUIDConverter": uuid.UUID(int=1),
           "IntegerConverter": 2026}


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
    guarded = {rule.rule for rule in rules if role_of(rule) in ("staff", "merchant")}
    assert guarded == set(ROLES), "a staff or merchant route: name the roles it lets through in ROLES"
    with_parameters = {rule.rule for rule in rules if rule.arguments}
    classified = set(CITIZEN_OBJECTS) | set(PARTNER_OBJECTS) | set(MERCHANT_OBJECTS) | set(NOT_OWNED)
    assert with_parameters == classified
    assert not set(CITIZEN_OBJECTS) & set(NOT_OWNED) and not set(MERCHANT_OBJECTS) & set(NOT_OWNED)


def test_the_spec_documents_each_operations_security(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    bearer = [{"bearerAuth": []}]
    expected = {"public": [], "citizen": bearer, "staff": bearer, "merchant": bearer,
                "partner": [{"partnerSignature": []}]}
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


def test_bearer_routes_refuse_a_partner_signature(app: Flask, client: FlaskClient, partner: PartnerCreds) -> None:
    for rule in api_rules(app):
        if role_of(rule) in ("citizen", "staff", "merchant"):
            for method in methods_of(rule):
                body = {} if method in ("POST", "PUT", "PATCH", "DELETE") else None
                assert_error(partner.call(client, method, sample_url(app, rule), body), 401)


@pytest.fixture
def tokens(db_session) -> dict[str, dict[str, str]]:
    """A real, active subject for each token role (the guard checks the subject after the role)."""
    merchant_id, store_ids = make_merchant()
    cashier, _ = make_merchant_staff(merchant_id, store_ids[:1])
    manager, _ = make_merchant_staff(merchant_id, role="merchant_admin")
    headers = {"citizen": bearer_for(make_citizen())}
    headers |= {role: bearer_as(f"staff:{make_staff(role)}", role) for role in STAFF_ROLES}
    headers |= {"merchant_staff": bearer_as(f"merchant_staff:{cashier}", "merchant_staff"),
                "merchant_admin": bearer_as(f"merchant_staff:{manager}", "merchant_admin")}
    db_session.commit()
    return headers


def _nowhere(rule: Rule) -> dict[str, Any]:
    """Path values naming no object, so an allowed call cannot change the callers' own accounts."""
    return {name: 999_999_999 for name in rule.arguments if type(rule._converters[name]).__name__ == "RowIdConverter"}


def test_staff_and_merchant_routes_let_through_only_their_roles(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]]
) -> None:
    """The role matrix: a citizen's token, a staff token on a merchant route, a merchant token on a
    staff route (and a staff role below the one needed) are a 403 "forbidden"; the roles named in
    ROLES get past the guard (whatever the route then answers about the missing object)."""
    for rule in api_rules(app):
        if role_of(rule) not in ("staff", "merchant"):
            continue
        url = sample_url(app, rule, _nowhere(rule))
        for method in methods_of(rule):
            body = {} if method in ("POST", "PUT", "PATCH", "DELETE") else None
            for role in TOKEN_ROLES:
                response = client.open(url, method=method, json=body, headers=tokens[role])
                where = f"{role}: {method} {url} → {response.status_code} {response.get_json(silent=True)}"
                if role != "citizen" and role_allows(rule.rule, role):
                    assert response.status_code < 500 and response.status_code != 401, where
                    assert not (response.status_code == 403
                                and response.get_json()["error"]["code"] == "forbidden"), where
                else:
                    assert_error(response, 403)
                    assert response.get_json()["error"]["code"] == "forbidden", where


def test_citizen_routes_refuse_staff_and_merchant_tokens(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]]
) -> None:
    for rule in api_rules(app):
        if role_of(rule) != "citizen":
            continue
        url = sample_url(app, rule, _nowhere(rule))
        for method in methods_of(rule):
            body = {} if method in ("POST", "PUT", "PATCH", "DELETE") else None
            for role in (*STAFF_ROLES, *MERCHANT_ROLES):
                response = client.open(url, method=method, json=body, headers=tokens[role])
                assert_error(response, 403)
                assert response.get_json()["error"]["code"] == "forbidden", (role, method, url)


def test_a_token_whose_role_the_account_no_longer_has_is_refused(client: FlaskClient, db_session) -> None:
    """role_required passes the token's role to the subject check: a demoted admin's (or merchant
    admin's) older token is a 401 at once; a token with the current role works."""
    from app.staff.service import staff_may_act
    from rewards.merchants.service import merchant_staff_may_act

    admin = make_staff("admin")
    merchant_id, _ = make_merchant()
    manager, _ = make_merchant_staff(merchant_id, role="merchant_admin")
    db_session.commit()
    old_admin = bearer_as(f"staff:{admin}", "admin")
    old_manager = bearer_as(f"merchant_staff:{manager}", "merchant_admin")
    assert client.get("/api/v1/staff/me", headers=old_admin).status_code == 200
    assert client.get("/api/v1/merchant/me", headers=old_manager).status_code == 200
    db_session.execute(text("UPDATE staff_users SET role = 'operator' WHERE id = :id"), {"id": admin})
    db_session.execute(text("UPDATE merchant_staff SET role = 'merchant_staff' WHERE id = :id"), {"id": manager})
    db_session.commit()
    assert [staff_may_act(admin, role) for role in ("admin", "operator", None)] == [False, True, True]
    assert [merchant_staff_may_act(manager, role) for role in ("merchant_admin", "merchant_staff")] == [False, True]
    for url, old in (("/api/v1/staff/me", old_admin), ("/api/v1/merchant/me", old_manager)):
        assert_error(client.get(url, headers=old), 401)
    assert client.get("/api/v1/staff/me", headers=bearer_as(f"staff:{admin}", "operator")).status_code == 200
    current = bearer_as(f"merchant_staff:{manager}", "merchant_staff")
    assert client.get("/api/v1/merchant/me", headers=current).status_code == 200


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
            "coupons": items("/api/v1/me/coupons"),
            "notifications": items("/api/v1/me/notifications"),
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
    merchant_id, _ = make_merchant()
    offer_id = make_offer(merchant_id, points_price=100)
    give_points(citizen_id, 500)
    notification = record_notification(citizen_id, "points_expiring", {"points": 5}, "bola:a:1")
    db_session.commit()
    coupon = signin.post(f"/api/v1/offers/{offer_id}/claim", headers={**bearer, **idem()})
    assert coupon.status_code == 201, coupon.get_json()
    coupon_id = coupon.get_json()["id"]
    yield Owned(bearer, user, {
        "/api/v1/me/coupons/<id:coupon_id>": {"coupon_id": coupon_id},
        "/api/v1/me/coupons/<id:coupon_id>/qr": {"coupon_id": coupon_id},
        "/api/v1/me/coupons/<id:coupon_id>/cancel": {"coupon_id": coupon_id},
        "/api/v1/me/notifications/<id:notification_id>/read": {"notification_id": notification.id},
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


@dataclass
class Shop:
    """Merchant A: its admin, a cashier, a live offer and one redemption at its till."""

    admin: dict[str, str]
    ids: dict[str, dict[str, Any]]  # route → path values naming A's object

    def snapshot(self, client: FlaskClient) -> dict[str, Any]:
        def items(path: str) -> Any:
            response = client.get(path, headers=self.admin)
            assert response.status_code == 200, response.get_json()
            return response.get_json()

        offer_id = self.ids["/api/v1/merchant/offers/<id:offer_id>"]["offer_id"]
        return {"offer": items(f"/api/v1/merchant/offers/{offer_id}"), "offers": items("/api/v1/merchant/offers"),
                "redemptions": items("/api/v1/merchant/redemptions"), "staff": items("/api/v1/merchant/staff")}


@pytest.fixture
def merchant_a(client: FlaskClient, db_session) -> Shop:
    merchant_id, store_ids = make_merchant(name_en="Shop A")
    cashier_id, _ = make_merchant_staff(merchant_id, store_ids[:1])
    admin_id, _ = make_merchant_staff(merchant_id, role="merchant_admin")
    offer_id = make_offer(merchant_id, points_price=100)
    buyer = make_citizen()
    give_points(buyer, 500)
    db_session.commit()
    claimed = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**bearer_for(buyer), **idem()})
    assert claimed.status_code == 201, claimed.get_json()
    qr = client.get(f"/api/v1/me/coupons/{claimed.get_json()['id']}/qr", headers=bearer_for(buyer))
    assert qr.status_code == 200, qr.get_json()
    cashier = bearer_as(f"merchant_staff:{cashier_id}", "merchant_staff")
    redeemed = client.post("/api/v1/merchant/redemptions", headers={**cashier, **idem()},
                           json={"store_id": store_ids[0], "token": qr.get_json()["token"]})
    assert redeemed.status_code == 201, redeemed.get_json()
    return Shop(bearer_as(f"merchant_staff:{admin_id}", "merchant_admin"), {
        "/api/v1/merchant/offers/<id:offer_id>": {"offer_id": offer_id},
        "/api/v1/merchant/redemptions/<id:redemption_id>/undo": {"redemption_id": redeemed.get_json()["id"]},
        "/api/v1/merchant/staff/<id:staff_id>": {"staff_id": cashier_id},
    })


# What merchant B's admin sends: changes A would notice if they went through.
MERCHANT_BODIES = {"PATCH": {"status": "paused", "title_en": "Taken over"}, "POST": {}, "PUT": {}, "DELETE": {}}


def test_merchant_b_cannot_touch_merchant_a_objects(app: Flask, client: FlaskClient, merchant_a: Shop,
                                                    db_session) -> None:
    other_id, other_stores = make_merchant(name_en="Shop B")
    other_admin, _ = make_merchant_staff(other_id, role="merchant_admin")
    merchant_b = bearer_as(f"merchant_staff:{other_admin}", "merchant_admin")
    db_session.commit()
    before = merchant_a.snapshot(client)
    for route in MERCHANT_OBJECTS:
        rules = [rule for rule in api_rules(app) if rule.rule == route]
        url = sample_url(app, rules[0], merchant_a.ids[route])
        for method in METHODS:
            routed = any(method in rule.methods for rule in rules)
            body = MERCHANT_BODIES.get(method)
            if method == "PATCH" and "staff" in route:
                body = {"role": "merchant_admin", "store_ids": other_stores}
            response = client.open(url, method=method, json=body, headers={**merchant_b, **idem()})
            assert not 200 <= response.status_code < 300, f"B: {method} {url} → {response.status_code}"
            assert response.status_code in ({403, 404} if routed else {405}), (method, url, response.get_json())
            assert_error(response, response.status_code)
    # B's own lists do not show A's objects either.
    for path in ("/api/v1/merchant/offers", "/api/v1/merchant/redemptions", "/api/v1/merchant/staff"):
        listed = client.get(path, headers=merchant_b)
        assert listed.status_code == 200
        ids = {item["id"] for item in listed.get_json()["items"]}
        assert not ids & {next(iter(v.values())) for k, v in merchant_a.ids.items() if path in k}, path
    assert merchant_a.snapshot(client) == before


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
