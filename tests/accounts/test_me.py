"""GET/PATCH /me, the districts list and the privacy terms."""
from __future__ import annotations

from datetime import datetime

import pytest

from app.accounts import service
from app.accounts.models import Citizen
from tests.conftest import bearer_for, make_citizen


@pytest.fixture
def me(db_session, citizen_id) -> dict[str, str]:
    headers = bearer_for(citizen_id)
    db_session.commit()  # error answers roll back the (shared) test session: keep the setup
    return headers


def test_me_shows_my_account(client, me, citizen_id):
    response = client.get("/api/v1/me", headers=me)

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == citizen_id
    assert body["home_district"] is None
    assert body["phone"] is None
    assert body["linked_providers"] == []
    assert body["consents_required"] is False
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None


def test_me_shows_the_phone_masked(client, db_session, me, citizen_id):
    service.set_phone_if_absent(db_session.get(Citizen, citizen_id), "+8613812341234")

    body = client.get("/api/v1/me", headers=me).get_json()

    assert body["phone"] == "138****1234"
    assert "13812341234" not in str(body)


def test_me_needs_a_token(client, db_session):
    assert client.get("/api/v1/me").status_code == 401
    assert client.patch("/api/v1/me", json={"home_district": "xuhui"}).status_code == 401


def test_set_and_clear_home_district(client, db_session, me, citizen_id):
    response = client.patch("/api/v1/me", json={"home_district": "pudong"}, headers=me)
    assert response.status_code == 200
    assert response.get_json()["home_district"] == "pudong"
    assert db_session.get(Citizen, citizen_id).home_district == "pudong"

    cleared = client.patch("/api/v1/me", json={"home_district": None}, headers=me)
    assert cleared.status_code == 200
    assert cleared.get_json()["home_district"] is None


def test_an_empty_patch_changes_nothing(client, me):
    client.patch("/api/v1/me", json={"home_district": "jingan"}, headers=me)
    assert client.patch("/api/v1/me", json={}, headers=me).get_json()["home_district"] == "jingan"


@pytest.mark.parametrize(
    "body",
    [
        {"home_district": "beijing"},
        {"home_district": "Pudong"},
        {"home_district": 310115},
        {"home_district": "xuhui", "id": 1},  # server-owned: mass assignment refused
        {"phone": "+8613812341234"},
    ],
)
def test_patch_me_refuses_what_it_does_not_know(client, db_session, me, citizen_id, body):
    response = client.patch("/api/v1/me", json=body, headers=me)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert db_session.get(Citizen, citizen_id).home_district is None


def test_districts_are_shanghais_sixteen(client):
    response = client.get("/api/v1/districts")

    assert response.status_code == 200
    items = response.get_json()["items"]
    assert len(items) == len({d["code"] for d in items}) == 16
    names = {d["zh"] for d in items}
    for name in ("黄浦", "徐汇", "长宁", "静安", "普陀", "虹口", "杨浦", "闵行",
                 "宝山", "嘉定", "浦东新区", "金山", "松江", "青浦", "奉贤", "崇明"):
        assert any(n.startswith(name) for n in names), name
    assert {"code": "pudong", "zh": "浦东新区", "en": "Pudong New Area", "admin_code": "310115"} in items


def test_every_district_code_is_accepted(client, db_session, me):
    for district in client.get("/api/v1/districts").get_json()["items"]:
        response = client.patch("/api/v1/me", json={"home_district": district["code"]}, headers=me)
        assert response.status_code == 200, district


def test_privacy_terms_are_served_in_both_languages(client):
    response = client.get("/api/v1/privacy-terms")

    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == "2026-11"
    assert body["title"]["zh"] and body["title"]["en"]
    for words in (("轨迹", "单独同意", "撤回", "下载", "注销"), ("separate consent", "withdraw", "download", "close")):
        text = body["text"]["zh"] if words[0] == "轨迹" else body["text"]["en"]
        for word in words:
            assert word in text


def test_a_new_citizen_is_asked_for_consent(client, db_session):
    citizen = make_citizen(privacy_consent=False)
    headers = bearer_for(citizen)

    assert client.get("/api/v1/me", headers=headers).get_json()["consents_required"] is True
