"""Notifications: recorded once per dedupe key, listed newest first with the unread count, marked read."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.notifications.service import NewNotification, record, record_many
from tests.conftest import bearer_for, make_citizen


def test_record_is_once_per_dedupe_key(db_session):
    alice = make_citizen()
    first = record(alice, "badge_earned", {"badge": "first_trip"}, "badge:first_trip:citizen:1")
    again = record(alice, "badge_earned", {"badge": "other"}, "badge:first_trip:citizen:1")

    assert first is not None and (first.kind, first.payload, first.read_at) == (
        "badge_earned", {"badge": "first_trip"}, None
    )
    assert again is None


def test_record_many_inserts_only_the_new_ones(db_session):
    alice, bob = make_citizen(), make_citizen()
    rows = [NewNotification(c, "points_expiring", {"points": 5}, f"k:{c}") for c in (alice, bob)]
    assert record_many(rows) == 2
    assert record_many(rows + [NewNotification(alice, "points_expiring", {}, "k:new")]) == 1
    assert record_many([]) == 0


@pytest.mark.parametrize(("kind", "key"), [("", "k"), ("x" * 33, "k"), ("kind", ""), ("kind", "k" * 201)])
def test_record_refuses_bad_kinds_and_keys(db_session, kind, key):
    with pytest.raises(ValueError):
        record(make_citizen(), kind, {}, key)


def test_the_list_is_newest_first_paged_with_the_unread_count(client, db_session):
    alice, bob = make_citizen(), make_citizen()
    for i in range(5):
        record(alice, "points_expiring", {"n": i}, f"alice:{i}")
    record(bob, "points_expiring", {"n": 99}, "bob:1")
    headers = bearer_for(alice)

    first = client.get("/api/v1/me/notifications?limit=3", headers=headers).get_json()
    second = client.get(f"/api/v1/me/notifications?limit=3&cursor={first['next_cursor']}", headers=headers).get_json()

    assert [n["payload"]["n"] for n in first["items"]] == [4, 3, 2]
    assert [n["payload"]["n"] for n in second["items"]] == [1, 0]
    assert second["next_cursor"] is None
    assert first["unread_count"] == 5 and {n["read"] for n in first["items"]} == {False}


def test_marking_read_lowers_the_unread_count_and_is_idempotent(client, db_session):
    alice = make_citizen()
    notification = record(alice, "points_expiring", {}, "alice:1")
    record(alice, "points_expiring", {}, "alice:2")
    headers = bearer_for(alice)
    db_session.commit()

    first = client.post(f"/api/v1/me/notifications/{notification.id}/read", headers=headers)
    again = client.post(f"/api/v1/me/notifications/{notification.id}/read", headers=headers)

    assert first.status_code == 200 and first.get_json()["read"] is True
    assert again.status_code == 200 and again.get_json()["read_at"] == first.get_json()["read_at"]
    listed = client.get("/api/v1/me/notifications", headers=headers).get_json()
    assert listed["unread_count"] == 1


def test_another_citizens_notification_is_a_404(client, db_session):
    alice, bob = make_citizen(), make_citizen()
    notification = record(alice, "points_expiring", {}, "alice:1")
    headers = bearer_for(bob)
    db_session.commit()
    for notification_id in (notification.id, 999_999_999):
        response = client.post(f"/api/v1/me/notifications/{notification_id}/read", headers=headers)
        assert (response.status_code, response.get_json()["error"]["code"]) == (404, "notification_not_found")
    db.session.refresh(notification)
    assert notification.read_at is None


def test_the_routes_need_a_citizen_and_refuse_bad_arguments(client, db_session):
    alice = make_citizen()
    headers = bearer_for(alice)
    db_session.commit()
    assert client.get("/api/v1/me/notifications").status_code == 401
    assert client.post("/api/v1/me/notifications/1/read").status_code == 401
    for query in ("limit=0", "limit=101", "cursor=!!", "extra=1"):
        response = client.get(f"/api/v1/me/notifications?{query}", headers=headers)
        assert response.status_code == 400, query
    forged = client.get("/api/v1/me/notifications?cursor=WyJ4Il0", headers=headers)  # ["x"]
    assert (forged.status_code, forged.get_json()["error"]["code"]) == (400, "invalid_cursor")
