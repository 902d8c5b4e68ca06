"""Merchants (issue 3 §1): operators onboard merchants, stores and the first merchant admin; a merchant
admin invites and removes its own staff; a citizen bound as staff switches to merchant mode."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth.tokens import verify_access_token
from app.extensions import db
from rewards.merchants import service
from rewards.merchants.models import MerchantStaff, StaffInvitation
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.rewards.factories import make_merchant, make_merchant_staff, make_staff

MERCHANTS = "/api/v1/merchants"
ACCEPT = "/api/v1/merchant/staff-invitations:accept"
SESSION = "/api/v1/merchant/session"


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def audits(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def operator(db_session) -> dict:
    staff_id = make_staff("operator")
    headers = bearer_as(f"staff:{staff_id}", "operator")  # creates the signing key before the commit
    db_session.commit()
    return {"id": staff_id, "headers": headers}


@pytest.fixture
def two_merchants(db_session, operator) -> dict:
    """Merchant A (admin + staff at its first store) and merchant B (admin), committed."""
    a, a_stores = make_merchant(districts=("huangpu", "xuhui"))
    b, b_stores = make_merchant(name_zh="乙店", name_en="Shop B", districts=("pudong",))
    a_admin, a_admin_citizen = make_merchant_staff(a, a_stores, role="merchant_admin")
    a_staff, a_staff_citizen = make_merchant_staff(a, a_stores[:1])
    b_admin, _ = make_merchant_staff(b, b_stores, role="merchant_admin")
    b_staff, _ = make_merchant_staff(b, b_stores)
    db_session.commit()
    return {
        "a": a, "a_stores": a_stores, "b": b, "b_stores": b_stores,
        "a_admin": a_admin, "a_staff": a_staff, "b_admin": b_admin, "b_staff": b_staff,
        "a_admin_citizen": a_admin_citizen, "a_staff_citizen": a_staff_citizen,
        "a_admin_h": bearer_as(f"merchant_staff:{a_admin}", "merchant_admin"),
        "a_staff_h": bearer_as(f"merchant_staff:{a_staff}", "merchant_staff"),
        "b_admin_h": bearer_as(f"merchant_staff:{b_admin}", "merchant_admin"),
    }


def accept(client, citizen_id: int, code: str):
    return client.post(ACCEPT, headers=bearer_for(citizen_id), json={"code": code})


# ---- operators -------------------------------------------------------------------------------

def test_an_operator_onboards_a_merchant_with_stores_and_its_first_admin(client, operator) -> None:
    headers = operator["headers"]

    created = client.post(MERCHANTS, headers=headers, json={"name_zh": "绿色咖啡", "name_en": "Green Café"})
    assert created.status_code == 201, created.get_json()
    merchant = created.get_json()
    assert (merchant["name_zh"], merchant["name_en"], merchant["status"]) == ("绿色咖啡", "Green Café", "active")
    merchant_url = f"{MERCHANTS}/{merchant['id']}"

    stores = [client.post(f"{merchant_url}/stores", headers=headers,
                          json={"name": name, "district": district, "address": "人民大道1号"})
              for name, district in (("人民广场店", "huangpu"), ("徐家汇店", "xuhui"))]
    assert [s.status_code for s in stores] == [201, 201]
    store_ids = [s.get_json()["id"] for s in stores]
    listed = client.get(f"{merchant_url}/stores", headers=headers).get_json()["items"]
    assert [(s["id"], s["district"], s["status"]) for s in listed] == [
        (store_ids[0], "huangpu", "active"), (store_ids[1], "xuhui", "active")]

    invitation = client.post(f"{merchant_url}/staff-invitations", headers=headers,
                             json={"role": "merchant_admin", "store_ids": store_ids, "label": "店长"})
    assert invitation.status_code == 201, invitation.get_json()
    code = invitation.get_json()["code"]
    assert len(code) == 10
    stored = db.session.scalars(select(StaffInvitation)).one()
    assert code.encode() not in stored.code_hash and stored.created_by == f"staff:{operator['id']}"

    citizen = make_citizen()
    db.session.commit()
    bound = accept(client, citizen, code.lower()[:5] + " " + code.lower()[5:])  # typed by hand
    assert bound.status_code == 201, bound.get_json()
    staff = bound.get_json()
    assert (staff["merchant_id"], staff["role"], staff["label"], staff["store_ids"]) == (
        merchant["id"], "merchant_admin", "店长", sorted(store_ids))

    session = client.post(SESSION, headers=bearer_for(citizen))
    assert session.status_code == 200, session.get_json()
    body = session.get_json()
    claims = verify_access_token(body["access_token"])
    assert (claims.subject, claims.role) == (f"merchant_staff:{staff['id']}", "merchant_admin")
    assert (body["merchant_id"], body["store_ids"]) == (merchant["id"], sorted(store_ids))
    me = client.get("/api/v1/merchant/me", headers=bearer(body["access_token"])).get_json()
    assert me["merchant"]["id"] == merchant["id"] and [s["id"] for s in me["stores"]] == sorted(store_ids)
    assert me["staff"]["id"] == staff["id"]

    assert [a.object_id for a in audits("merchant.created")] == [str(merchant["id"])]
    assert audits("merchant.created")[0].actor_id == str(operator["id"])
    assert len(audits("merchant.store_created")) == 2
    assert [a.details["role"] for a in audits("merchant.staff_invited")] == ["merchant_admin"]
    [bound_audit] = audits("merchant.staff_bound")
    assert (bound_audit.actor_type, bound_audit.actor_id) == ("citizen", str(citizen))

    listed_staff = client.get(f"{merchant_url}/staff", headers=headers).get_json()
    assert [s["id"] for s in listed_staff["items"]] == [staff["id"]] and listed_staff["next_cursor"] is None


def test_operators_list_rename_and_suspend_merchants(client, operator, two_merchants) -> None:
    headers = operator["headers"]
    first = client.get(f"{MERCHANTS}?limit=1", headers=headers).get_json()
    second = client.get(f"{MERCHANTS}?limit=5&cursor={first['next_cursor']}", headers=headers).get_json()
    assert [m["id"] for m in first["items"] + second["items"]] == [two_merchants["a"], two_merchants["b"]]

    renamed = client.patch(f"{MERCHANTS}/{two_merchants['b']}", headers=headers, json={"name_en": "Shop Bee"})
    assert renamed.status_code == 200 and renamed.get_json()["name_en"] == "Shop Bee"
    assert renamed.get_json()["name_zh"] == "乙店"

    suspended = client.patch(f"{MERCHANTS}/{two_merchants['b']}", headers=headers, json={"status": "suspended"})
    assert suspended.status_code == 200
    refused = client.get("/api/v1/merchant/me", headers=two_merchants["b_admin_h"])
    assert refused.status_code == 401 and error_code(refused) == "invalid_token"
    assert client.get("/api/v1/merchant/me", headers=two_merchants["a_admin_h"]).status_code == 200
    only_suspended = client.get(f"{MERCHANTS}?status=suspended", headers=headers).get_json()["items"]
    assert [m["id"] for m in only_suspended] == [two_merchants["b"]]
    assert [a.details for a in audits("merchant.updated")] == [{"names": True},
                                                                {"status": ["active", "suspended"]}]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/999999/stores", {"name": "x", "district": "huangpu", "address": "y"}, 404, "merchant_not_found"),
        ("/{a}/stores", {"name": "x", "district": "atlantis", "address": "y"}, 400, None),
        ("/{a}/stores", {"name": " ", "district": "huangpu", "address": "y"}, 400, "invalid_store"),
        ("/{a}/stores", {"name": "x", "district": "huangpu", "address": "y", "extra": 1}, 400, None),
        ("", {"name_zh": " ", "name_en": "x"}, 400, "invalid_merchant_name"),
        ("/{a}/staff-invitations", {"store_ids": []}, 400, "store_required"),
        ("/{a}/staff-invitations", {"store_ids": ["{b_store}"]}, 404, "store_not_found"),
        ("/999999/staff-invitations", {"store_ids": [1]}, 404, "merchant_not_found"),
        ("/{a}/staff-invitations", {"role": "owner", "store_ids": ["{a_store}"]}, 400, None),
    ],
)
def test_operator_inputs_are_checked(client, operator, two_merchants, path, body, status, code) -> None:
    values = {"a": two_merchants["a"], "b_store": two_merchants["b_stores"][0],
              "a_store": two_merchants["a_stores"][0]}
    body = {k: ([int(str(x).format(**values)) for x in v] if isinstance(v, list) else v) for k, v in body.items()}

    response = client.post(MERCHANTS + path.format(**values), headers=operator["headers"], json=body)

    assert response.status_code == status, response.get_json()
    if code:
        assert error_code(response) == code


def test_only_operators_reach_the_operator_endpoints(client, two_merchants) -> None:
    reviewer = make_staff("reviewer")
    admin = make_staff("admin")
    citizen = make_citizen()
    callers = [bearer_for(citizen), bearer_as(f"staff:{reviewer}", "reviewer"), two_merchants["a_admin_h"],
               two_merchants["a_staff_h"]]
    admin_h = bearer_as(f"staff:{admin}", "admin")
    db.session.commit()
    a = two_merchants["a"]
    calls = [("post", MERCHANTS, {"name_zh": "x", "name_en": "y"}), ("get", MERCHANTS, None),
             ("get", f"{MERCHANTS}/{a}", None), ("patch", f"{MERCHANTS}/{a}", {"status": "suspended"}),
             ("post", f"{MERCHANTS}/{a}/stores", {"name": "x", "district": "huangpu", "address": "y"}),
             ("get", f"{MERCHANTS}/{a}/staff", None),
             ("post", f"{MERCHANTS}/{a}/staff-invitations", {"store_ids": two_merchants["a_stores"]})]
    for method, url, body in calls:
        assert getattr(client, method)(url, json=body).status_code == 401
        for headers in callers:
            response = getattr(client, method)(url, headers=headers, json=body)
            assert response.status_code == 403, (method, url, response.get_json())
    assert client.get(f"{MERCHANTS}/{a}", headers=admin_h).status_code == 200  # an admin is also an operator


# ---- invitations ------------------------------------------------------------------------------

def test_an_invitation_works_once(client, two_merchants) -> None:
    code, _ = service.issue_invitation(
        _actor("merchant_staff", two_merchants["a_admin"], "merchant_admin"), two_merchants["a"],
        "merchant_staff", two_merchants["a_stores"][1:])
    first, second = make_citizen(), make_citizen()
    db.session.commit()

    assert accept(client, first, code).status_code == 201
    again = accept(client, second, code)
    assert again.status_code == 409 and error_code(again) == "invitation_used"
    unknown = accept(client, second, "ABCDEFGHJK")
    assert unknown.status_code == 404 and error_code(unknown) == "invalid_invitation_code"
    assert client.post(SESSION, headers=bearer_for(second)).status_code == 403


def test_an_invitation_expires_after_ten_minutes(client, two_merchants) -> None:
    code, expires_at = service.issue_invitation(
        _actor("staff", 1, "operator"), two_merchants["a"], "merchant_staff", two_merchants["a_stores"])
    citizen = make_citizen()
    db.session.commit()
    assert timedelta(minutes=9) < expires_at - datetime.now(UTC) <= timedelta(minutes=10)

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=10, seconds=1)):
        response = accept(client, citizen, code)

    assert response.status_code == 410 and error_code(response) == "invitation_expired"
    assert db.session.scalar(select(MerchantStaff.id).where(MerchantStaff.citizen_id == citizen)) is None


def test_a_citizen_is_staff_of_one_merchant_at_a_time(client, operator, two_merchants) -> None:
    response = client.post(f"{MERCHANTS}/{two_merchants['b']}/staff-invitations", headers=operator["headers"],
                           json={"store_ids": two_merchants["b_stores"]})
    code = response.get_json()["code"]

    refused = accept(client, two_merchants["a_staff_citizen"], code)

    assert refused.status_code == 409 and error_code(refused) == "already_merchant_staff"
    # The code was not spent by the refusal: someone else can still use it.
    newcomer = make_citizen()
    db.session.commit()
    assert accept(client, newcomer, code).status_code == 201


def test_an_invitation_of_a_suspended_merchant_cannot_be_accepted(client, operator, two_merchants) -> None:
    code = client.post(f"{MERCHANTS}/{two_merchants['a']}/staff-invitations", headers=operator["headers"],
                       json={"store_ids": two_merchants["a_stores"]}).get_json()["code"]
    client.patch(f"{MERCHANTS}/{two_merchants['a']}", headers=operator["headers"], json={"status": "suspended"})
    citizen = make_citizen()
    db.session.commit()

    response = accept(client, citizen, code)

    assert response.status_code == 409 and error_code(response) == "merchant_not_active"


def test_accepting_needs_a_citizen_token(client, operator, two_merchants) -> None:
    body = {"code": "ABCDEFGHJK"}
    assert client.post(ACCEPT, json=body).status_code == 401
    assert client.post(ACCEPT, headers=operator["headers"], json=body).status_code == 403
    assert client.post(ACCEPT, headers=two_merchants["a_admin_h"], json=body).status_code == 403
    assert client.post(SESSION, headers=two_merchants["a_admin_h"]).status_code == 403


def test_merchant_session_is_refused_to_citizens_who_are_not_staff(client, two_merchants) -> None:
    citizen = make_citizen()
    db.session.commit()

    response = client.post(SESSION, headers=bearer_for(citizen))

    assert response.status_code == 403 and error_code(response) == "not_merchant_staff"
    staff_session = client.post(SESSION, headers=bearer_for(two_merchants["a_staff_citizen"])).get_json()
    assert verify_access_token(staff_session["access_token"]).role == "merchant_staff"
    assert staff_session["store_ids"] == two_merchants["a_stores"][:1]


# ---- merchant admins manage their own staff ---------------------------------------------------

def test_a_merchant_admin_invites_moves_and_removes_staff(client, two_merchants) -> None:
    admin_h = two_merchants["a_admin_h"]
    invited = client.post("/api/v1/merchant/staff-invitations", headers=admin_h,
                          json={"store_ids": two_merchants["a_stores"][1:], "label": "收银台2"})
    assert invited.status_code == 201, invited.get_json()
    citizen = make_citizen()
    db.session.commit()
    new_staff = accept(client, citizen, invited.get_json()["code"]).get_json()
    assert (new_staff["role"], new_staff["store_ids"]) == ("merchant_staff", two_merchants["a_stores"][1:])

    listed = client.get("/api/v1/merchant/staff", headers=admin_h).get_json()["items"]
    assert [s["id"] for s in listed] == [two_merchants["a_admin"], two_merchants["a_staff"], new_staff["id"]]
    assert "citizen_id" not in listed[0]

    moved = client.patch(f"/api/v1/merchant/staff/{new_staff['id']}", headers=admin_h,
                         json={"store_ids": two_merchants["a_stores"]})
    assert moved.status_code == 200 and moved.get_json()["store_ids"] == two_merchants["a_stores"]
    assert service.staff_store_ids(new_staff["id"]) == set(two_merchants["a_stores"])

    token = client.post(SESSION, headers=bearer_for(citizen)).get_json()["access_token"]
    assert client.get("/api/v1/merchant/me", headers=bearer(token)).status_code == 200
    removed = client.delete(f"/api/v1/merchant/staff/{new_staff['id']}", headers=admin_h)
    assert removed.status_code == 204
    refused = client.get("/api/v1/merchant/me", headers=bearer(token))
    assert refused.status_code == 401 and error_code(refused) == "invalid_token"
    assert client.post(SESSION, headers=bearer_for(citizen)).status_code == 403
    removed_list = client.get("/api/v1/merchant/staff?status=removed", headers=admin_h).get_json()["items"]
    assert [s["id"] for s in removed_list] == [new_staff["id"]] and removed_list[0]["removed_at"]
    assert [a.object_id for a in audits("merchant.staff_removed")] == [str(new_staff["id"])]
    assert audits("merchant.staff_updated")[0].details["store_ids"] == two_merchants["a_stores"]
    again = client.delete(f"/api/v1/merchant/staff/{new_staff['id']}", headers=admin_h)
    assert again.status_code == 404


def test_a_demoted_merchant_admin_token_stops_working(client, two_merchants) -> None:
    second_admin, _ = make_merchant_staff(two_merchants["a"], role="merchant_admin")
    second_h = bearer_as(f"merchant_staff:{second_admin}", "merchant_admin")
    db.session.commit()

    demoted = client.patch(f"/api/v1/merchant/staff/{second_admin}", headers=two_merchants["a_admin_h"],
                           json={"role": "merchant_staff"})

    assert demoted.status_code == 200 and demoted.get_json()["role"] == "merchant_staff"
    assert client.get("/api/v1/merchant/staff", headers=second_h).status_code == 401


def test_a_merchant_admin_cannot_remove_or_demote_themselves(client, two_merchants) -> None:
    me = two_merchants["a_admin"]
    removed = client.delete(f"/api/v1/merchant/staff/{me}", headers=two_merchants["a_admin_h"])
    assert removed.status_code == 409 and error_code(removed) == "cannot_remove_self"
    demoted = client.patch(f"/api/v1/merchant/staff/{me}", headers=two_merchants["a_admin_h"],
                           json={"role": "merchant_staff"})
    assert demoted.status_code == 409 and error_code(demoted) == "cannot_change_own_role"


def test_merchant_staff_cannot_manage_staff(client, two_merchants) -> None:
    headers = two_merchants["a_staff_h"]
    assert client.get("/api/v1/merchant/staff", headers=headers).status_code == 403
    assert client.post("/api/v1/merchant/staff-invitations", headers=headers,
                       json={"store_ids": two_merchants["a_stores"]}).status_code == 403
    assert client.delete(f"/api/v1/merchant/staff/{two_merchants['a_admin']}", headers=headers).status_code == 403
    assert client.get("/api/v1/merchant/me", headers=headers).status_code == 200
    stores = client.get("/api/v1/merchant/stores", headers=headers).get_json()["items"]
    assert [s["id"] for s in stores] == two_merchants["a_stores"]


def test_the_admin_of_merchant_a_cannot_touch_merchant_b(client, two_merchants) -> None:
    """BOLA: the merchant is always the caller's own; B's staff and stores do not exist for A."""
    a_admin_h, b_staff = two_merchants["a_admin_h"], two_merchants["b_staff"]

    patched = client.patch(f"/api/v1/merchant/staff/{b_staff}", headers=a_admin_h,
                           json={"store_ids": two_merchants["a_stores"]})
    removed = client.delete(f"/api/v1/merchant/staff/{b_staff}", headers=a_admin_h)
    invited = client.post("/api/v1/merchant/staff-invitations", headers=a_admin_h,
                          json={"store_ids": two_merchants["b_stores"]})
    moved = client.patch(f"/api/v1/merchant/staff/{two_merchants['a_staff']}", headers=a_admin_h,
                         json={"store_ids": two_merchants["b_stores"]})

    assert (patched.status_code, error_code(patched)) == (404, "merchant_staff_not_found")
    assert (removed.status_code, error_code(removed)) == (404, "merchant_staff_not_found")
    assert (invited.status_code, error_code(invited)) == (404, "store_not_found")
    assert (moved.status_code, error_code(moved)) == (404, "store_not_found")
    listed = client.get("/api/v1/merchant/staff", headers=a_admin_h).get_json()["items"]
    assert {s["merchant_id"] for s in listed} == {two_merchants["a"]}
    assert service.merchant_staff_may_act(b_staff)
    assert service.staff_store_ids(b_staff) == set(two_merchants["b_stores"])
    assert not audits("merchant.staff_updated") and not audits("merchant.staff_removed")


def test_a_closed_store_cannot_be_given_to_staff(client, operator, two_merchants) -> None:
    a, (first, second) = two_merchants["a"], two_merchants["a_stores"]
    closed = client.patch(f"{MERCHANTS}/{a}/stores/{second}", headers=operator["headers"],
                          json={"status": "closed"})
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"

    response = client.patch(f"/api/v1/merchant/staff/{two_merchants['a_staff']}",
                            headers=two_merchants["a_admin_h"], json={"store_ids": [first, second]})

    assert response.status_code == 404 and error_code(response) == "store_not_found"
    assert service.staff_store_ids(two_merchants["a_admin"]) == {first}
    wrong_merchant = client.patch(f"{MERCHANTS}/{two_merchants['b']}/stores/{first}", headers=operator["headers"],
                                  json={"status": "closed"})
    assert wrong_merchant.status_code == 404


def _actor(kind: str, ident: int, role: str):
    from app.auth.guard import Actor

    return Actor(kind=kind, id=ident, role=role)


def test_staff_and_citizen_tokens_do_not_open_merchant_mode(client, operator, two_merchants) -> None:
    admin = make_staff("admin")
    citizen = two_merchants["a_admin_citizen"]  # even a citizen who is a merchant admin needs the merchant token
    callers = [operator["headers"], bearer_as(f"staff:{admin}", "admin"), bearer_for(citizen)]
    db.session.commit()
    staff_url = f"/api/v1/merchant/staff/{two_merchants['a_staff']}"
    for headers in callers:
        for method, url in (("get", "/api/v1/merchant/me"), ("get", "/api/v1/merchant/stores"),
                            ("get", "/api/v1/merchant/staff"), ("post", "/api/v1/merchant/staff-invitations"),
                            ("patch", staff_url), ("delete", staff_url)):
            body = {"store_ids": two_merchants["a_stores"]} if method in ("post", "patch") else None
            response = getattr(client, method)(url, headers=headers, json=body)
            assert response.status_code == 403, (method, url, response.get_json())
    assert service.merchant_staff_may_act(two_merchants["a_staff"])
