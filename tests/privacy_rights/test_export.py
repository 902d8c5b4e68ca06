"""GET /me/export: all my personal data as a downloadable JSON file, and nobody else's (PIPL Art. 45)."""
from __future__ import annotations

import json
import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.privacy_rights.export import exported_columns
from app.privacy_rights.inventory import INVENTORY
from tests.auth.conftest import Providers
from tests.privacy_rights.conftest import Journey, make_journey

EXPORT = "/api/v1/me/export"


@pytest.fixture
def two_citizens(signin: FlaskClient, providers: Providers, partner, db_session) -> tuple[Journey, Journey]:
    alice = make_journey(signin, providers, partner, db_session, phone="+8613911112222", account_ref="CARD-ALICE-0001")
    bob = make_journey(signin, providers, partner, db_session, phone="+8613833334444", account_ref="CARD-BOB-0002")
    return alice, bob


def test_the_export_is_a_json_attachment_with_every_inventoried_section(
    signin: FlaskClient, two_citizens: tuple[Journey, Journey], caplog: pytest.LogCaptureFixture
) -> None:
    alice, _ = two_citizens
    caplog.set_level(logging.DEBUG)
    response = signin.get(EXPORT, headers=alice.bearer)

    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="carbon-account-{alice.citizen_id}.json"'
    assert response.headers["Cache-Control"] == "no-store"
    document = json.loads(response.data)
    assert document["format"] == "carbon-account-export/1"
    for entry in INVENTORY:
        assert entry.section in document, entry.section
        rows = [document[entry.section]] if entry.section == "profile" else document[entry.section]
        for row in rows:
            assert set(exported_columns(entry)) <= set(row), entry.table  # every inventoried column
            assert not set(entry.withheld) & set(row), entry.table  # never a hash, index or ciphertext
            assert row[entry.owner] == alice.citizen_id, entry.table
    profile = document["profile"]
    assert profile["phone"] == alice.phone  # in full, for its owner
    assert [i["provider"] for i in document["identities"]] == ["suishenban", "wechat"]
    assert [c["kind"] for c in document["consents"]] == ["privacy", "trajectory"]
    [binding] = document["bindings"]
    assert binding["account_ref_masked"] == "****0001" and binding["partner_code"]
    [event] = document["events"]
    assert event["status"] == "credited" and event["activity"] == {"distance_km": "10.57"}
    assert {e["kind"] for e in document["ledger_entries"]} >= {"earn", "hold"}
    assert [c["id"] for c in document["coupons"]] == [alice.coupon_id]
    assert len(document["notifications"]) == 1
    [appeal] = document["appeals"]
    assert appeal["id"] == alice.appeal_id and appeal["description"] == "刷卡进站后没有记分"
    assert document["balances"]["held"] == 100
    # Nothing personal went to the logs on the way.
    for secret in (alice.phone, alice.phone[3:], alice.account_ref, "刷卡进站后没有记分"):
        assert secret not in caplog.text


def test_another_citizens_data_never_appears(signin: FlaskClient, two_citizens: tuple[Journey, Journey]) -> None:
    alice, bob = two_citizens
    body = signin.get(EXPORT, headers=alice.bearer).get_data(as_text=True)
    for secret in (bob.phone, bob.phone[3:], bob.account_ref, bob.account_ref[-4:], bob.user, f"ORDER-{bob.user}"):
        assert secret not in body
    document = json.loads(body)
    for entry in INVENTORY:
        rows = [document[entry.section]] if entry.section == "profile" else document[entry.section]
        assert all(row[entry.owner] == alice.citizen_id for row in rows), entry.section
    assert bob.coupon_id not in {c["id"] for c in document["coupons"]}
    assert bob.appeal_id not in {a["id"] for a in document["appeals"]}


def test_the_export_is_audited_and_rate_limited(
    app: Flask, signin: FlaskClient, two_citizens: tuple[Journey, Journey], db_session
) -> None:
    alice, bob = two_citizens
    limit = int(app.config["RATELIMIT_EXPORT"].split()[0])
    for _ in range(limit):
        assert signin.get(EXPORT, headers=alice.bearer).status_code == 200
    refused = signin.get(EXPORT, headers=alice.bearer)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert signin.get(EXPORT, headers=bob.bearer).status_code == 200  # per citizen, not global
    exported = db_session.scalars(select(AuditEntry.actor_id).where(AuditEntry.action == "privacy.exported")).all()
    assert sorted(exported) == sorted([str(alice.citizen_id)] * limit + [str(bob.citizen_id)])
    assert db_session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "privacy.exported", AuditEntry.details.has_key("phone"))) == 0


def test_the_export_needs_a_signed_in_citizen(client: FlaskClient, db_session) -> None:
    assert client.get(EXPORT).status_code == 401
