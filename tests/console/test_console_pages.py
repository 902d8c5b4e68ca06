"""The console's pages through Flask's test client: sign-in, session cookie, CSRF, roles, suspension, forms."""
from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from app.audit.models import AuditEntry
from app.staff.models import StaffUser
from scenarios.models import Methodology
from tests.console.helpers import ebike_body
from tests.rewards.factories import TEST_PASSWORD, make_staff

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/console/sign-in") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    match = _TOKEN.search(page.get_data(as_text=True))
    assert match, "the page has no CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, login: str, password: str = TEST_PASSWORD) -> Any:
    return client.post("/console/sign-in", data={"login": login, "password": password,
                                                 "csrf_token": csrf_token(client)})


def login_of(db_session, staff_id: int) -> str:
    return db_session.get(StaffUser, staff_id).login


@pytest.fixture
def people(db_session) -> dict[str, str]:
    """Logins of an operator, a reviewer and an admin (committed: sign-in failures roll back)."""
    ids = {role: make_staff(role) for role in ("operator", "reviewer", "admin")}
    db_session.commit()
    return {role: login_of(db_session, staff_id) for role, staff_id in ids.items()}


def test_pages_need_a_session(client: FlaskClient, db_session) -> None:
    response = client.get("/console/methodologies")
    assert response.status_code == 302 and "/console/sign-in" in response.headers["Location"]


def test_sign_in_sets_a_hardened_session_cookie_and_sign_out_ends_it(client: FlaskClient, people) -> None:
    response = sign_in(client, people["operator"])
    assert response.status_code == 303 and response.headers["Location"].endswith("/console/")
    cookie = next(value for name, value in response.headers if name == "Set-Cookie"
                  and value.startswith("carbon_console="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # testing: plain http
    page = client.get("/console/methodologies")
    assert page.status_code == 200 and "方法学" in page.get_data(as_text=True)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    token = _TOKEN.search(page.get_data(as_text=True)).group(1)
    assert client.post("/console/sign-out", data={"csrf_token": token}).status_code == 303
    assert client.get("/console/methodologies").status_code == 302


def test_production_cookies_are_secure(app: Flask) -> None:
    from app.config import CONFIGS

    assert CONFIGS["production"].SESSION_COOKIE_SECURE is True
    assert CONFIGS["production"].SESSION_COOKIE_SAMESITE == "Lax" and CONFIGS["production"].SESSION_COOKIE_HTTPONLY


def test_a_wrong_password_is_refused_and_audited(client: FlaskClient, people, db_session) -> None:
    response = sign_in(client, people["operator"], "not the password at all")
    assert response.status_code == 401 and "登录名或密码错误" in response.get_data(as_text=True)
    reasons = db_session.scalars(select(AuditEntry.details).where(AuditEntry.action == "staff.login_failed")).all()
    assert {"reason": "wrong_password"} in reasons


def test_posts_without_a_csrf_token_are_refused(client: FlaskClient, people, db_session) -> None:
    refused = client.post("/console/sign-in", data={"login": people["operator"], "password": TEST_PASSWORD})
    assert refused.status_code == 400 and "表单已过期或来源不明" in refused.get_data(as_text=True)
    assert sign_in(client, people["operator"]).status_code == 303
    form = {"code": "SHCI-P-EBIKE", "type": "personal", "title_zh": "x", "title_en": "x", "formula": "1",
            "data_requirements_zh": "x", "data_requirements_en": "x", "fields": "- {name: n, type: integer}"}
    assert client.post("/console/methodologies/new", data=form).status_code == 400
    assert client.post("/console/methodologies/new", data={**form, "csrf_token": "forged"}).status_code == 400
    assert db_session.scalars(select(Methodology.id).where(Methodology.code == "SHCI-P-EBIKE")).first() is None


def test_the_json_api_is_not_subject_to_csrf(client: FlaskClient, db_session) -> None:
    """Bearer-token API calls carry no CSRF token and are not refused for it."""
    from tests.conftest import bearer_as

    operator = make_staff("operator")
    db_session.commit()
    response = client.post("/api/v1/staff/methodologies/drafts", json=ebike_body(),
                           headers=bearer_as(f"staff:{operator}", "operator"))
    assert response.status_code == 201, response.get_json()


def _form(**changes: str) -> dict[str, str]:
    form = {"code": "SHCI-P-EBIKE", "type": "personal", "title_zh": "共享电单车出行", "title_en": "Shared e-bike trip",
            "fields": "- {name: distance_km, type: decimal, unit: km, min: 0.1, max: 50}",
            "parameters": "- name: net_g_per_km\n  unit: gCO2e/km\n  value: 61.5\n  source: Operator survey 2026",
            "formula": "distance_km * net_g_per_km", "data_requirements_zh": "运营方上报每次骑行里程。",
            "data_requirements_en": "The operator reports each ride's distance.",
            "nox_value": "0.021", "nox_unit": "g/km", "nox_source": "MEE guide 2024",
            "documents": "Methodology text | https://example.gov.cn/ebike.pdf"}
    form.update(changes)
    return form


def test_an_operator_drafts_through_the_form_and_bad_formulas_are_explained(client: FlaskClient, people,
                                                                             db_session) -> None:
    sign_in(client, people["operator"])
    token = csrf_token(client, "/console/methodologies/new")
    bad = client.post("/console/methodologies/new", data={**_form(formula="distance_km * nope"), "csrf_token": token})
    assert bad.status_code == 400 and "nope" in bad.get_data(as_text=True)
    broken_yaml = client.post("/console/methodologies/new", data={**_form(fields="- [unclosed"), "csrf_token": token})
    assert broken_yaml.status_code == 400 and "YAML" in broken_yaml.get_data(as_text=True)
    created = client.post("/console/methodologies/new", data={**_form(), "csrf_token": token})
    assert created.status_code == 303, created.get_data(as_text=True)
    detail = client.get(created.headers["Location"]).get_data(as_text=True)
    assert "共享电单车出行" in detail and "起草" in detail and "0.021 g/km" in detail and "提交审核" in detail
    methodology = db_session.scalars(select(Methodology).where(Methodology.code == "SHCI-P-EBIKE")).one()
    assert methodology.definition["parameters"][0]["value"] == "61.5"
    assert methodology.documents == [{"title": "Methodology text", "reference": "https://example.gov.cn/ebike.pdf"}]
    edit = client.get(f"/console/methodologies/{methodology.id}/edit").get_data(as_text=True)
    assert "net_g_per_km" in edit and "61.5" in edit


def test_roles_are_checked_on_every_page(client: FlaskClient, people) -> None:
    sign_in(client, people["reviewer"])
    assert client.get("/console/methodologies").status_code == 200
    assert client.get("/console/methodologies/new").status_code == 403
    token = csrf_token(client, "/console/methodologies")
    assert client.post("/console/methodologies/999999/file", data={"csrf_token": token}).status_code == 403


def test_a_suspended_account_loses_its_session_at_once(client: FlaskClient, people, db_session) -> None:
    sign_in(client, people["operator"])
    assert client.get("/console/methodologies").status_code == 200
    db_session.execute(text("UPDATE staff_users SET status = 'suspended' WHERE login = :login"),
                       {"login": people["operator"]})
    db_session.commit()
    refused = client.get("/console/methodologies")
    assert refused.status_code == 401 and "已停用" in refused.get_data(as_text=True)
    db_session.execute(text("UPDATE staff_users SET status = 'active' WHERE login = :login"),
                       {"login": people["operator"]})
    db_session.commit()
    assert client.get("/console/methodologies").status_code == 302  # the session is gone: sign in again


def test_sign_in_never_redirects_off_site(client: FlaskClient, people) -> None:
    token = csrf_token(client)
    for target in ("https://evil.example/console/", "//evil.example/console/", "/console/\\evil"):
        response = client.post("/console/sign-in", data={"login": people["admin"], "password": TEST_PASSWORD,
                                                         "csrf_token": token, "next": target})
        assert response.status_code == 303 and response.headers["Location"] == "/console/", target
        client.post("/console/sign-out", data={"csrf_token": csrf_token(client, "/console/methodologies")})
        token = csrf_token(client)


def test_the_trial_form_shows_grams_points_and_rejections(client: FlaskClient, people, db_session) -> None:
    sign_in(client, people["operator"])
    token = csrf_token(client, "/console/methodologies/new")
    created = client.post("/console/methodologies/new", data={**_form(), "csrf_token": token})
    detail = created.headers["Location"]
    page = client.get(detail).get_data(as_text=True)
    assert "distance_km: " in page  # a starting sample built from the declared fields
    tried = client.post(f"{detail}/trial", data={"points_per_gram": "1", "csrf_token": token,
                                                 "activities": "- {distance_km: 10}\n- {distance_km: 99}"})
    text_ = tried.get_data(as_text=True)
    assert tried.status_code == 200 and "615" in text_ and "将被拒收" in text_ and "distance_km" in text_
    refused = client.post(f"{detail}/trial", data={"points_per_gram": "-1", "activities": "- {distance_km: 1}",
                                                   "csrf_token": token})
    assert refused.status_code == 400 and "points_per_gram" in refused.get_data(as_text=True)


def test_an_operator_sets_up_tries_and_publishes_a_scenario_in_the_console(client: FlaskClient, people,
                                                                           db_session) -> None:
    from scenarios.registry import service as registry
    from scenarios.registry.schemas import MethodologyDraftSchema

    operator_id = db_session.scalars(select(StaffUser.id).where(StaffUser.login == people["operator"])).one()
    reviewer_id = db_session.scalars(select(StaffUser.id).where(StaffUser.login == people["reviewer"])).one()
    admin_id = db_session.scalars(select(StaffUser.id).where(StaffUser.login == people["admin"])).one()
    methodology = registry.create_draft(operator_id, MethodologyDraftSchema().load(ebike_body()))
    registry.submit(operator_id, methodology.id)
    registry.review(reviewer_id, methodology.id, "approve", None)
    registry.file_version(admin_id, methodology.id)
    db_session.commit()

    sign_in(client, people["operator"])
    new_url = f"/console/scenarios/new?methodology_id={methodology.id}"
    token = csrf_token(client, new_url)
    form = {"csrf_token": token, "code": "ebike_trip", "category": "行", "name_zh": "共享电单车出行",
            "name_en": "Shared e-bike trip", "description_zh": "骑电单车代替开车。",
            "description_en": "E-bike, not car.",
            "points_per_gram": "0.5", "cap_unit": "events", "cap_per_day": "4", "cap_per_month": "",
            "data_sources": "bikeshare", "effective_from": "2026-01-01T08:00"}
    refused = client.post(new_url, data={**form, "points_per_gram": "0"})
    assert refused.status_code == 400 and "points_per_gram" in refused.get_data(as_text=True)
    created = client.post(new_url, data=form)
    assert created.status_code == 303, created.get_data(as_text=True)
    detail = created.headers["Location"]
    page = client.get(detail).get_data(as_text=True)
    assert "草稿（未发布）" in page and "每日 4" in page and "2026-01-01 08:00" in page
    assert client.get("/api/v1/scenarios/ebike_trip").status_code == 404
    tried = client.post(f"{detail}/trial", data={"csrf_token": token, "activities": "- {distance_km: 10}"})
    assert tried.status_code == 200 and ">307<" in tried.get_data(as_text=True)  # 615 g × 0.5 point/g
    assert client.post(f"{detail}/publish", data={"csrf_token": token}).status_code == 303
    assert "已发布" in client.get(detail).get_data(as_text=True)
    listed = client.get("/api/v1/scenarios/ebike_trip").get_json()
    assert listed["points_per_gram"] == "0.5" and listed["effective_from"].startswith("2026-01-01T00:00:00")


def test_a_demoted_account_loses_its_session_too(client: FlaskClient, people, db_session) -> None:
    sign_in(client, people["admin"])
    assert client.get("/console/methodologies?status=approved").status_code == 200
    db_session.execute(text("UPDATE staff_users SET role = 'reviewer' WHERE login = :login"),
                       {"login": people["admin"]})
    db_session.commit()
    assert client.get("/console/methodologies").status_code == 401
    sign_in(client, people["admin"])  # signing in again gives the new role's session
    assert client.get("/console/methodologies").status_code == 200
    assert client.get("/console/methodologies/new").status_code == 403
