"""Account binding (BRIEF R4.4): a one-time code the citizen types into the partner's app, confirmed by
the partner with its own pseudonymous reference. We never send personal data to partners."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.behaviours.crediting import credit_batch
from app.behaviours.models import InboundEvent
from app.extensions import db
from app.partners.models import BindingCode, PartnerBinding
from app.partners.service import BINDING_ALPHABET, set_partner_status
from tests.conftest import bearer_for, make_citizen
from tests.partners.helpers import BINDINGS, bind_through_api, issue_code, metro_event, new_partner


@pytest.fixture
def metro(db_session, starter_scenarios):
    creds = new_partner("metro")
    db_session.commit()
    return creds


@pytest.fixture
def citizen(db_session) -> int:
    citizen_id = make_citizen(trajectory_scenarios=("metro_trip",))
    db_session.commit()
    return citizen_id


def confirm(client, partner, code: str, account_ref: str):
    return partner.call(client, "POST", BINDINGS, {"binding_code": code, "account_ref": account_ref})


def my_bindings(client, citizen_id: int) -> list[dict]:
    response = client.get("/api/v1/me/bindings", headers=bearer_for(citizen_id))
    assert response.status_code == 200
    return response.get_json()["items"]


def error_code(response) -> str:
    return response.get_json()["error"]["code"]


def test_the_public_partner_list_shows_active_partners_only(client, metro, db_session) -> None:
    suspended = new_partner("bus")
    set_partner_status(suspended.code, "suspended")
    db_session.commit()

    response = client.get("/api/v1/partners")

    codes = {item["code"] for item in response.get_json()["items"]}
    assert metro.code in codes and suspended.code not in codes
    assert set(response.get_json()["items"][0]) == {"code", "name_zh", "name_en", "kind"}


def test_a_binding_code_is_8_unambiguous_characters_valid_10_minutes_stored_only_hashed(
    client, metro, citizen
) -> None:
    issued = issue_code(client, citizen, metro.code)

    assert len(issued["code"]) == 8 and set(issued["code"]) <= set(BINDING_ALPHABET)
    expires = datetime.fromisoformat(issued["expires_at"])
    assert timedelta(minutes=9) < expires - datetime.now(UTC) <= timedelta(minutes=10)
    stored = db.session.scalars(select(BindingCode).where(BindingCode.citizen_id == citizen)).one()
    assert issued["code"].encode() not in stored.code_hash


def test_binding_end_to_end_maps_the_partners_events_to_the_citizen(client, metro, citizen) -> None:
    response = bind_through_api(client, metro, citizen, "CARD-0000-1234-5678")
    assert response.status_code == 201
    assert response.get_json()["status"] == "bound"
    assert "citizen" not in str(response.get_json())  # the partner learns nothing about the citizen

    [binding] = my_bindings(client, citizen)
    assert binding["partner_code"] == metro.code
    assert binding["account_ref_masked"] == "****5678"

    pushed = metro.push(client, [metro_event("trip-1", "CARD-0000-1234-5678")])
    assert pushed.get_json()["accepted"] == 1
    credit_batch(uuid.UUID(pushed.get_json()["batch_id"]))
    event = db.session.scalars(select(InboundEvent).where(InboundEvent.external_id == "trip-1")).one()
    assert (event.status, event.citizen_id) == ("credited", citizen)


def test_the_account_reference_is_stored_encrypted_with_a_blind_index(client, metro, citizen) -> None:
    bind_through_api(client, metro, citizen, "CARD-0000-1234-5678")

    row = db.session.scalars(select(PartnerBinding).where(PartnerBinding.citizen_id == citizen)).one()
    assert b"CARD-0000-1234-5678" not in row.account_ref_enc + row.account_ref_idx


def test_a_code_works_once(client, metro, citizen) -> None:
    code = issue_code(client, citizen, metro.code)["code"]
    assert confirm(client, metro, code, "ref-1").status_code == 201

    again = confirm(client, metro, code, "ref-2")

    assert (again.status_code, error_code(again)) == (400, "invalid_binding_code")


def test_an_expired_code_is_refused(client, metro, citizen) -> None:
    code = issue_code(client, citizen, metro.code)["code"]

    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=601)):
        response = confirm(client, metro, code, "ref-1")

    assert (response.status_code, error_code(response)) == (400, "invalid_binding_code")


def test_a_code_issued_for_another_partner_is_not_found(client, metro, citizen, db_session) -> None:
    bus = new_partner("bus")
    db_session.commit()
    code = issue_code(client, citizen, bus.code)["code"]

    response = confirm(client, metro, code, "ref-1")

    assert (response.status_code, error_code(response)) == (404, "invalid_binding_code")


def test_codes_are_case_and_space_insensitive(client, metro, citizen) -> None:
    code = issue_code(client, citizen, metro.code)["code"]

    assert confirm(client, metro, f" {code[:4].lower()} {code[4:]}", "ref-1").status_code == 201


def test_a_new_code_invalidates_the_older_unused_one(client, metro, citizen) -> None:
    first = issue_code(client, citizen, metro.code)["code"]
    second = issue_code(client, citizen, metro.code)["code"]

    assert error_code(confirm(client, metro, first, "ref-1")) == "invalid_binding_code"
    assert confirm(client, metro, second, "ref-1").status_code == 201


def test_a_reference_bound_to_another_citizen_is_409(client, metro, citizen, db_session) -> None:
    other = make_citizen()
    db_session.commit()
    assert bind_through_api(client, metro, citizen, "shared-ref").status_code == 201

    response = bind_through_api(client, metro, other, "shared-ref")

    assert (response.status_code, error_code(response)) == (409, "account_ref_taken")


def test_binding_again_replaces_the_citizens_previous_binding(client, metro, citizen) -> None:
    bind_through_api(client, metro, citizen, "old-card-1111")
    bind_through_api(client, metro, citizen, "new-card-2222")

    assert [b["account_ref_masked"] for b in my_bindings(client, citizen)] == ["****2222"]
    pushed = metro.push(client, [metro_event("old-1", "old-card-1111"), metro_event("new-1", "new-card-2222")])
    credit_batch(uuid.UUID(pushed.get_json()["batch_id"]))
    statuses = dict(db.session.execute(select(InboundEvent.external_id, InboundEvent.status)).tuples().all())
    assert statuses == {"old-1": "unknown_account", "new-1": "credited"}


def test_the_citizen_unbinds_and_can_bind_again(client, metro, citizen) -> None:
    bind_through_api(client, metro, citizen, "card-7777")
    [binding] = my_bindings(client, citizen)

    response = client.delete(f"/api/v1/me/bindings/{binding['id']}", headers=bearer_for(citizen))

    assert response.status_code == 204
    assert my_bindings(client, citizen) == []
    assert bind_through_api(client, metro, citizen, "card-7777").status_code == 201
    assert len(my_bindings(client, citizen)) == 1


def test_a_citizen_cannot_unbind_another_citizens_binding(client, metro, citizen, db_session) -> None:
    other = make_citizen()
    db_session.commit()
    bind_through_api(client, metro, citizen, "card-8888")
    [binding] = my_bindings(client, citizen)

    response = client.delete(f"/api/v1/me/bindings/{binding['id']}", headers=bearer_for(other))

    assert response.status_code == 404
    assert len(my_bindings(client, citizen)) == 1


def test_the_partner_unbinds_by_its_reference(client, metro, citizen) -> None:
    bind_through_api(client, metro, citizen, "card-9999")

    assert metro.call(client, "DELETE", BINDINGS, {"account_ref": "card-9999"}).status_code == 204
    assert my_bindings(client, citizen) == []
    again = metro.call(client, "DELETE", BINDINGS, {"account_ref": "card-9999"})
    assert (again.status_code, error_code(again)) == (404, "binding_not_found")


def test_a_partner_cannot_unbind_another_partners_reference(client, metro, citizen, db_session) -> None:
    bus = new_partner("bus")
    db_session.commit()
    bind_through_api(client, metro, citizen, "card-5555")

    assert bus.call(client, "DELETE", BINDINGS, {"account_ref": "card-5555"}).status_code == 404
    assert len(my_bindings(client, citizen)) == 1


def test_binding_and_unbinding_are_audited_without_the_reference(client, metro, citizen) -> None:
    bind_through_api(client, metro, citizen, "card-4321")
    [binding] = my_bindings(client, citizen)
    client.delete(f"/api/v1/me/bindings/{binding['id']}", headers=bearer_for(citizen))

    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.object_type == "partner_binding").order_by(AuditEntry.id)
    ).all()
    assert [e.action for e in entries] == ["partner_binding.bound", "partner_binding.unbound"]
    assert "card-4321" not in str([e.details for e in entries])


@pytest.mark.parametrize(
    "body",
    [
        {"binding_code": "ABCDEFGH"},
        {"binding_code": "ABCDEFGH", "account_ref": ""},
        {"binding_code": "ABCDEFGH", "account_ref": "x" * 129},
        {"binding_code": "ABCDEFGH", "account_ref": "ok", "citizen_id": 1},
    ],
)
def test_confirm_bodies_are_validated(client, metro, body) -> None:
    response = metro.call(client, "POST", BINDINGS, body)

    assert (response.status_code, error_code(response)) == (400, "validation_error")


def test_binding_codes_need_a_signed_in_citizen_and_a_known_partner(client, citizen) -> None:
    assert client.post("/api/v1/me/bindings/codes", json={"partner_code": "x"}).status_code == 401
    response = client.post("/api/v1/me/bindings/codes", json={"partner_code": "nobody"},
                           headers=bearer_for(citizen))
    assert (response.status_code, error_code(response)) == (404, "partner_not_found")


def test_references_codes_and_secrets_never_reach_the_logs(client, metro, citizen, caplog) -> None:
    caplog.set_level("DEBUG")
    code = issue_code(client, citizen, metro.code)["code"]
    confirm(client, metro, code, "CARD-LOGGED-0001")
    metro.push(client, [metro_event("log-1", "CARD-LOGGED-0001"), metro_event("log-2", "CARD-LOGGED-0001",
                                                                              claimed_elsewhere=True)])

    for secret in ("CARD-LOGGED-0001", code, metro.secret):
        assert secret not in caplog.text
