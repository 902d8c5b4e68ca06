"""Staff accounts: password sign-in, admin-managed accounts, immediate suspension, the role matrix."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth.tokens import verify_access_token
from app.extensions import db
from app.staff.models import StaffUser
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.rewards.factories import TEST_PASSWORD, make_merchant, make_merchant_staff, make_staff

SESSION = "/api/v1/staff/session"
USERS = "/api/v1/staff/users"
NEW_PASSWORD = "a much longer secret 42"


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def audits(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


@pytest.fixture
def admin(db_session) -> dict[str, str]:
    admin_id = make_staff("admin", login="root-admin")
    headers = bearer_as(f"staff:{admin_id}", "admin")  # creates the signing key: before the commit
    db_session.commit()  # an error response rolls back to here, not before the fixture's rows
    return {"id": admin_id, **headers}


def admin_headers(admin: dict) -> dict[str, str]:
    return {"Authorization": admin["Authorization"]}


def test_sign_in_returns_a_staff_token_with_the_role(client, db_session) -> None:
    staff_id = make_staff("reviewer", login="Rev.Wang")

    response = client.post(SESSION, json={"login": " rev.wang ", "password": TEST_PASSWORD})

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["staff"] == {**body["staff"], "id": staff_id, "login": "rev.wang", "role": "reviewer",
                             "status": "active"}
    assert "password_hash" not in body["staff"] and "password" not in body["staff"]
    claims = verify_access_token(body["access_token"])
    assert (claims.subject, claims.role) == (f"staff:{staff_id}", "reviewer")
    me = client.get("/api/v1/staff/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.get_json()["id"] == staff_id
    assert db.session.get(StaffUser, staff_id).last_login_at is not None
    assert [a.actor_id for a in audits("staff.login")] == [str(staff_id)]


def test_wrong_password_and_unknown_login_are_the_same_401_and_audited(client, db_session) -> None:
    staff_id = make_staff("operator", login="ops-li")
    db.session.commit()

    wrong = client.post(SESSION, json={"login": "ops-li", "password": "not the password"})
    unknown = client.post(SESSION, json={"login": "nobody-here", "password": "not the password"})

    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert error_code(wrong) == "invalid_credentials"
    failed = audits("staff.login_failed")
    assert [(a.actor_id, a.details["reason"]) for a in failed] == [(str(staff_id), "wrong_password"),
                                                                   (None, "unknown_login")]


def test_a_suspended_account_cannot_sign_in(client, db_session) -> None:
    make_staff("operator", login="gone", status="suspended")
    db.session.commit()

    response = client.post(SESSION, json={"login": "gone", "password": TEST_PASSWORD})

    assert response.status_code == 401 and error_code(response) == "invalid_credentials"


def test_sign_in_input_is_validated(client, db_session) -> None:
    assert client.post(SESSION, json={"login": "x"}).status_code == 400
    assert client.post(SESSION, json={"login": "x", "password": "y", "extra": 1}).status_code == 400
    assert client.post(SESSION, json={"login": "x", "password": "y" * 257}).status_code == 400


def test_sign_in_is_rate_limited(app, client, db_session) -> None:
    app.config["RATELIMIT_AUTH"] = "3 per minute"
    try:
        statuses = [client.post(SESSION, json={"login": "who", "password": "wrong-wrong"}).status_code
                    for _ in range(4)]
    finally:
        app.config["RATELIMIT_AUTH"] = "1000 per minute"
    assert statuses == [401, 401, 401, 429]


def test_an_admin_creates_lists_and_reads_staff(client, admin) -> None:
    headers = admin_headers(admin)

    created = client.post(USERS, headers=headers, json={"login": "ops.zhang", "display_name": "张运营",
                                                       "password": NEW_PASSWORD, "role": "operator"})

    assert created.status_code == 201, created.get_json()
    staff = created.get_json()
    assert (staff["login"], staff["display_name"], staff["role"], staff["status"]) == (
        "ops.zhang", "张运营", "operator", "active")
    assert client.post(SESSION, json={"login": "ops.zhang", "password": NEW_PASSWORD}).status_code == 200
    row = db.session.get(StaffUser, staff["id"])
    assert row.password_hash.startswith("$argon2id$") and NEW_PASSWORD not in row.password_hash
    [entry] = audits("staff.created")
    assert (entry.actor_type, entry.actor_id, entry.object_id, entry.details) == (
        "staff", str(admin["id"]), str(staff["id"]), {"role": "operator"})

    page = client.get(f"{USERS}?limit=1", headers=headers).get_json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = client.get(f"{USERS}?limit=10&cursor={page['next_cursor']}", headers=headers).get_json()
    assert [s["id"] for s in page["items"] + rest["items"]] == [admin["id"], staff["id"]]
    assert rest["next_cursor"] is None
    operators = client.get(f"{USERS}?role=operator", headers=headers).get_json()["items"]
    assert [s["id"] for s in operators] == [staff["id"]]
    assert client.get(f"{USERS}/{staff['id']}", headers=headers).get_json()["login"] == "ops.zhang"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"login": "short-pw", "display_name": "x", "password": "only11chars", "role": "operator"}, 400, None),
        ({"login": "bad login!", "display_name": "x", "password": NEW_PASSWORD, "role": "operator"}, 400,
         "invalid_login"),
        ({"login": "ok-login", "display_name": "x", "password": NEW_PASSWORD, "role": "boss"}, 400, None),
        ({"login": "ok-login", "display_name": " ", "password": NEW_PASSWORD, "role": "operator"}, 400,
         "invalid_display_name"),
        ({"login": "ok-login", "display_name": "x", "password": "aaaaaaaaaaaaaa", "role": "operator"}, 400,
         "weak_password"),
        ({"login": "root-admin", "display_name": "x", "password": NEW_PASSWORD, "role": "operator"}, 409,
         "staff_login_taken"),
    ],
)
def test_creating_staff_refuses_bad_input(client, admin, body, status, code) -> None:
    response = client.post(USERS, headers=admin_headers(admin), json=body)

    assert response.status_code == status, response.get_json()
    if code:
        assert error_code(response) == code


def test_a_suspended_staff_token_is_refused_at_once(client, admin) -> None:
    operator_id = make_staff("operator")
    db.session.commit()
    token = bearer_as(f"staff:{operator_id}", "operator")
    assert client.get("/api/v1/staff/me", headers=token).status_code == 200

    suspended = client.patch(f"{USERS}/{operator_id}", headers=admin_headers(admin), json={"status": "suspended"})

    assert suspended.status_code == 200 and suspended.get_json()["status"] == "suspended"
    refused = client.get("/api/v1/staff/me", headers=token)
    assert refused.status_code == 401 and error_code(refused) == "invalid_token"
    assert client.get("/api/v1/merchants", headers=token).status_code == 401
    [entry] = audits("staff.updated")
    assert entry.details == {"status": ["active", "suspended"]} and entry.actor_id == str(admin["id"])

    client.patch(f"{USERS}/{operator_id}", headers=admin_headers(admin), json={"status": "active"})
    assert client.get("/api/v1/staff/me", headers=token).status_code == 200


def test_an_admin_changes_a_role_and_resets_a_password(client, admin) -> None:
    staff_id = make_staff("operator", login="ops-role")
    db.session.commit()

    response = client.patch(f"{USERS}/{staff_id}", headers=admin_headers(admin),
                            json={"role": "reviewer", "password": NEW_PASSWORD, "display_name": "Reviewer"})

    assert response.status_code == 200
    assert (response.get_json()["role"], response.get_json()["display_name"]) == ("reviewer", "Reviewer")
    assert client.post(SESSION, json={"login": "ops-role", "password": TEST_PASSWORD}).status_code == 401
    signed_in = client.post(SESSION, json={"login": "ops-role", "password": NEW_PASSWORD}).get_json()
    assert verify_access_token(signed_in["access_token"]).role == "reviewer"
    [entry] = audits("staff.updated")
    assert entry.details == {"role": ["operator", "reviewer"], "display_name": True, "password": True}


def test_the_last_active_admin_cannot_be_demoted_or_suspended(client, admin) -> None:
    for change in ({"role": "operator"}, {"status": "suspended"}):
        response = client.patch(f"{USERS}/{admin['id']}", headers=admin_headers(admin), json=change)
        assert response.status_code == 409 and error_code(response) == "last_admin"

    second = make_staff("admin")
    db.session.commit()
    response = client.patch(f"{USERS}/{admin['id']}", headers=admin_headers(admin), json={"role": "operator"})
    assert response.status_code == 200
    # The old token still says "admin": it stops working at once, a new sign-in carries the new role.
    stale = client.get(USERS, headers=admin_headers(admin))
    assert stale.status_code == 401 and error_code(stale) == "invalid_token"
    fresh = client.post(SESSION, json={"login": "root-admin", "password": TEST_PASSWORD}).get_json()
    assert verify_access_token(fresh["access_token"]).role == "operator"
    assert client.get(USERS, headers={"Authorization": f"Bearer {fresh['access_token']}"}).status_code == 403
    assert db.session.get(StaffUser, second).role == "admin"


def test_update_refuses_unknown_staff_and_bad_values(client, admin) -> None:
    headers = admin_headers(admin)
    missing = client.patch(f"{USERS}/999999", headers=headers, json={"status": "suspended"})
    assert missing.status_code == 404 and error_code(missing) == "staff_not_found"
    assert client.get(f"{USERS}/999999", headers=headers).status_code == 404
    assert client.patch(f"{USERS}/{admin['id']}", headers=headers, json={"status": "gone"}).status_code == 400
    assert client.patch(f"{USERS}/{admin['id']}", headers=headers, json={"password": "short"}).status_code == 400
    assert client.patch(f"{USERS}/{admin['id']}", headers=headers, json={"login": "x"}).status_code == 400


def test_role_matrix_for_staff_management(client, db_session) -> None:
    operator_id = make_staff("operator")
    reviewer_id = make_staff("reviewer")
    merchant_id, store_ids = make_merchant()
    merchant_admin, _ = make_merchant_staff(merchant_id, store_ids, role="merchant_admin")
    citizen = make_citizen()
    callers = (bearer_for(citizen), bearer_as(f"staff:{operator_id}", "operator"),
               bearer_as(f"staff:{reviewer_id}", "reviewer"),
               bearer_as(f"merchant_staff:{merchant_admin}", "merchant_admin"))
    db.session.commit()
    body = {"login": "newbie", "display_name": "n", "password": NEW_PASSWORD, "role": "operator"}

    assert client.get(USERS).status_code == 401
    assert client.post(USERS, json=body).status_code == 401
    for headers in callers:
        assert client.get(USERS, headers=headers).status_code == 403
        assert client.post(USERS, headers=headers, json=body).status_code == 403
        assert client.patch(f"{USERS}/{operator_id}", headers=headers, json={"status": "suspended"}).status_code == 403
    assert client.get("/api/v1/staff/me", headers=bearer_for(citizen)).status_code == 403
    # A staff token naming a role its account does not have is only as good as the role in the token,
    # and a forged subject that does not exist is refused.
    assert client.get(USERS, headers=bearer_as("staff:999999", "admin")).status_code == 401
    assert db.session.scalar(select(StaffUser.id).where(StaffUser.login == "newbie")) is None
