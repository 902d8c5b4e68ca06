"""Account deletion with confirmation (PIPL Art. 47): said plainly, then done once, through the ledger."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text

from app.accounts.models import Citizen
from app.audit.models import AuditEntry
from app.audit.service import verify_chain
from app.behaviours.crediting import credit_batch
from app.behaviours.models import InboundEvent
from app.extensions import db
from app.ledger.models import LedgerAccount
from app.ledger.service import account_balances, check_invariants
from app.models_base import utcnow
from app.privacy_rights.deletion import FORFEIT_ACCOUNT
from app.privacy_rights.inventory import INVENTORY
from app.privacy_rights.models import AccountDeletion
from rewards.coupons.models import Coupon, Offer
from tests.auth.conftest import Providers
from tests.partners.helpers import PartnerCreds, metro_event
from tests.privacy_rights.conftest import Journey, make_journey

REQUEST = "/api/v1/me/deletion-request"
CONFIRM = "/api/v1/me/deletion"


@pytest.fixture
def alice(signin: FlaskClient, providers: Providers, partner: PartnerCreds, db_session) -> Journey:
    return make_journey(signin, providers, partner, db_session, phone="+8613955556666", account_ref="CARD-DEL-0001")


def test_the_first_call_says_what_happens_and_deletes_nothing(signin: FlaskClient, alice: Journey) -> None:
    before = account_balances(alice.citizen_id)
    response = signin.post(REQUEST, headers=alice.bearer)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["points_forfeited"] == before.available + before.held > 0
    assert body["points_held_by_coupons"] == 100
    assert (body["coupons_cancelled"], body["bindings_removed"]) == (1, 1)
    assert all(c["zh"] and c["en"] for c in body["consequences"])
    assert f"{body['points_forfeited']} 积分" in body["consequences"][0]["zh"]
    assert len(body["confirmation_token"]) >= 32
    assert signin.get("/api/v1/me", headers=alice.bearer).status_code == 200
    assert account_balances(alice.citizen_id) == before


def test_confirming_deletes_the_account_and_the_ledger_still_reconciles(
    signin: FlaskClient, providers: Providers, partner: PartnerCreds, alice: Journey, db_session
) -> None:
    available = account_balances(alice.citizen_id).available
    token = signin.post(REQUEST, headers=alice.bearer).get_json()["confirmation_token"]
    assert check_invariants() == []

    response = signin.post(CONFIRM, headers=alice.bearer, json={"confirmation_token": token})

    assert response.status_code == 200, response.get_json()
    receipt = response.get_json()
    assert receipt["points_forfeited"] == available + 100  # the coupon's hold came back first
    assert (receipt["coupons_cancelled"], receipt["bindings_removed"]) == (1, 1)
    # Points: forfeited through the ledger, never patched; every invariant holds.
    assert check_invariants() == []
    assert account_balances(alice.citizen_id).available == 0 and account_balances(alice.citizen_id).held == 0
    forfeit = db_session.scalar(select(LedgerAccount).where(LedgerAccount.code == FORFEIT_ACCOUNT))
    assert forfeit is not None and forfeit.credits_posted == receipt["points_forfeited"]
    # The coupon is cancelled, its hold voided, its stock back.
    coupon = db_session.get(Coupon, alice.coupon_id)
    assert coupon.status == "cancelled"
    assert db_session.execute(text("SELECT count(*) FROM ledger_transfers WHERE pending_id = :h AND kind = 'void'"),
                              {"h": coupon.hold_id}).scalar_one() == 1
    assert db_session.get(Offer, alice.offer_id).remaining == 50
    # Personal data: deleted or erased as the inventory says.
    for entry in INVENTORY:
        table = db.metadata.tables[entry.table]
        rows = db_session.execute(select(table).where(table.c[entry.owner] == alice.citizen_id)).mappings().all()
        if entry.on_delete == "delete":
            assert rows == [], entry.table
        for row in rows if entry.on_delete == "erase" else []:
            for column, value in entry.erase.items():
                assert row[column] == value, (entry.table, column)
    citizen = db_session.get(Citizen, alice.citizen_id)
    assert (citizen.status, citizen.phone_idx, citizen.phone_enc) == ("closed", None, None)
    [event] = db_session.scalars(select(InboundEvent).where(InboundEvent.citizen_id == alice.citizen_id)).all()
    assert (event.activity, event.district, event.points) == ({}, None, event.points) and event.points > 0
    assert db_session.execute(text("SELECT count(*) FROM consents WHERE citizen_id = :c AND withdrawn_at IS NULL"),
                              {"c": alice.citizen_id}).scalar_one() == 0
    assert db_session.execute(text("SELECT status FROM appeals WHERE id = :id"),
                              {"id": alice.appeal_id}).scalar_one() == "withdrawn"
    assert db_session.execute(text("SELECT count(*) FROM idempotency_records WHERE scope = :s"),
                              {"s": f"citizen:{alice.citizen_id}"}).scalar_one() == 0
    # Audited, ids and counts only; the chain still verifies.
    audited = db_session.scalar(select(AuditEntry).where(AuditEntry.action == "account.deleted"))
    assert audited.actor_id == str(alice.citizen_id)
    assert audited.details["forfeited_points"] == receipt["points_forfeited"]
    assert verify_chain() is None


def test_afterwards_the_tokens_stop_working_and_the_retry_gets_the_receipt(
    signin: FlaskClient, alice: Journey
) -> None:
    token = signin.post(REQUEST, headers=alice.bearer).get_json()["confirmation_token"]
    first = signin.post(CONFIRM, headers=alice.bearer, json={"confirmation_token": token})
    assert first.status_code == 200

    again = signin.post(CONFIRM, headers=alice.bearer, json={"confirmation_token": token})
    assert again.status_code == 200 and again.get_json() == first.get_json()
    for method, path in (("GET", "/api/v1/me"), ("GET", "/api/v1/me/export"), ("POST", REQUEST),
                         ("GET", "/api/v1/me/appeals")):
        response = signin.open(path, method=method, headers=alice.bearer)
        assert response.status_code == 401, (path, response.get_json())
    wrong = signin.post(CONFIRM, headers=alice.bearer, json={"confirmation_token": "x" * 43})
    assert wrong.status_code == 401
    refreshed = signin.post("/api/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert refreshed.status_code == 401


def test_signing_in_again_with_the_same_provider_creates_a_fresh_account(
    signin: FlaskClient, providers: Providers, alice: Journey
) -> None:
    token = signin.post(REQUEST, headers=alice.bearer).get_json()["confirmation_token"]
    assert signin.post(CONFIRM, headers=alice.bearer, json={"confirmation_token": token}).status_code == 200

    for provider in ("suishenban", "wechat"):
        code = providers.mint(provider, alice.user, **({"phone": alice.phone} if provider == "suishenban" else {}))
        signed_in = signin.post(f"/api/v1/auth/{provider}", json={"code": code})
        assert signed_in.status_code == 200, signed_in.get_json()
        fresh = signed_in.get_json()["citizen"]
        assert fresh["id"] != alice.citizen_id and fresh["consents_required"] is True
        bearer = {"Authorization": f"Bearer {signed_in.get_json()['access_token']}"}
        account = signin.get("/api/v1/me/account", headers=bearer).get_json()
        assert account["points"]["available"] == 0
        if provider == "suishenban":
            assert signin.get("/api/v1/me", headers=bearer).get_json()["phone"] == "139****6666"


def test_partner_events_for_the_deleted_citizen_are_refused(
    signin: FlaskClient, partner: PartnerCreds, alice: Journey, db_session
) -> None:
    token = signin.post(REQUEST, headers=alice.bearer).get_json()["confirmation_token"]
    assert signin.post(CONFIRM, headers=alice.bearer, json={"confirmation_token": token}).status_code == 200

    pushed = partner.push(signin, [metro_event("after-deletion", alice.account_ref)])
    assert pushed.status_code == 202, pushed.get_json()
    credit_batch(uuid.UUID(pushed.get_json()["batch_id"]))
    event = db_session.scalar(select(InboundEvent).where(InboundEvent.external_id == "after-deletion"))
    assert (event.status, event.citizen_id, event.points) == ("unknown_account", None, None)
    assert account_balances(alice.citizen_id).available == 0
    assert check_invariants() == []


def test_a_wrong_or_expired_confirmation_deletes_nothing(signin: FlaskClient, alice: Journey, db_session) -> None:
    assert signin.post(CONFIRM, headers=alice.bearer, json={"confirmation_token": "nope"}).status_code == 403
    first = signin.post(REQUEST, headers=alice.bearer).get_json()["confirmation_token"]
    second = signin.post(REQUEST, headers=alice.bearer).get_json()["confirmation_token"]
    stale = signin.post(CONFIRM, headers=alice.bearer, json={"confirmation_token": first})
    assert stale.status_code == 403 and stale.get_json()["error"]["code"] == "deletion_confirmation_invalid"
    db_session.execute(text("UPDATE account_deletions SET expires_at = :t WHERE citizen_id = :c"),
                       {"t": utcnow() - timedelta(seconds=1), "c": alice.citizen_id})
    db_session.commit()
    expired = signin.post(CONFIRM, headers=alice.bearer, json={"confirmation_token": second})
    assert expired.status_code == 409 and expired.get_json()["error"]["code"] == "deletion_confirmation_expired"
    assert db_session.get(Citizen, alice.citizen_id, populate_existing=True).status == "active"
    assert db_session.get(AccountDeletion, alice.citizen_id).deleted_at is None
    assert signin.get("/api/v1/me", headers=alice.bearer).status_code == 200


def test_confirmations_sent_at_once_delete_once(app, committed) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import bearer_for, make_citizen
    from tests.rewards.test_coupons_support import give_points

    citizen_id = make_citizen()
    give_points(citizen_id, 300)
    bearer = bearer_for(citizen_id)
    committed.commit()
    token = app.test_client().post(REQUEST, headers=bearer).get_json()["confirmation_token"]

    def confirm(_: int) -> tuple[int, dict]:
        response = app.test_client().post(CONFIRM, headers=bearer, json={"confirmation_token": token})
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(confirm, range(6)))
    assert {status for status, _ in answers} == {200}
    assert len({str(body) for _, body in answers}) == 1 and answers[0][1]["points_forfeited"] == 300
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.action == "account.deleted")) == 1
        forfeited = select(LedgerAccount.credits_posted).where(LedgerAccount.code == FORFEIT_ACCOUNT)
        assert db.session.scalar(forfeited) == 300
        assert check_invariants() == []
