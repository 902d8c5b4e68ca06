"""Partner request signatures (SECURITY.md §Partner ingestion): HMAC over timestamp\\nnonce\\nraw body,
±300 s, nonces never reused, secrets rotated with overlap, suspended partners refused."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from app.extensions import db
from app.partners.models import PartnerSecret
from app.partners.service import rotate_secret, set_partner_status
from tests.partner_client import json_body, signed_headers
from tests.partners.helpers import BATCH, metro_event, new_partner

BODY = json_body({"events": [metro_event("sig-1", "card-0001")]})
PROBES = (0, 1, 2, 7, 40, 90, -40, -3, -2, -1)  # body byte positions: both braces, keys, values, the end


@pytest.fixture
def partner(db_session):
    creds = new_partner("metro")
    db_session.commit()  # a savepoint release: a refused request's rollback must not undo the setup
    return creds


def post(client, body: bytes, headers: dict[str, str]):
    return client.post(BATCH, data=body, headers=headers)


def assert_refused(response, code: str = "invalid_signature", status: int = 401) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


def flip(text: str, position: int, alphabet: str) -> str:
    """The same string with one character replaced by another character of `alphabet`."""
    current = text[position]
    replacement = alphabet[(alphabet.index(current) + 1) % len(alphabet)] if current in alphabet else alphabet[0]
    return text[:position] + replacement + text[position + 1:]


def test_a_correctly_signed_batch_is_accepted(client, partner) -> None:
    response = post(client, BODY, signed_headers(partner.key_id, partner.secret, BODY))

    assert response.status_code == 202
    assert response.get_json()["received"] == 1


@pytest.mark.parametrize("position", PROBES)
def test_any_changed_body_byte_is_refused(client, partner, position) -> None:
    headers = signed_headers(partner.key_id, partner.secret, BODY)
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01

    assert_refused(post(client, bytes(tampered), headers))


@pytest.mark.parametrize("position", range(10))
def test_any_changed_timestamp_digit_is_refused(client, partner, position) -> None:
    headers = signed_headers(partner.key_id, partner.secret, BODY)
    headers["X-Timestamp"] = flip(headers["X-Timestamp"], position, "0123456789")

    assert_refused(post(client, BODY, headers))


@pytest.mark.parametrize("position", (0, 1, 5, 11, 17, 23))
def test_any_changed_nonce_character_is_refused(client, partner, position) -> None:
    headers = signed_headers(partner.key_id, partner.secret, BODY, nonce="n0nce-for_signature-test")
    headers["X-Nonce"] = flip(headers["X-Nonce"], position, "abcdefghijklmnopqrstuvwxyz0123456789-_")

    assert_refused(post(client, BODY, headers))


@pytest.mark.parametrize("position", (0, 2, 3, 10, -1))
def test_any_changed_key_id_character_is_refused(client, partner, position) -> None:
    headers = signed_headers(partner.key_id, partner.secret, BODY)
    key_id = headers["X-Partner-Key"]
    headers["X-Partner-Key"] = flip(key_id, position % len(key_id), "0123456789abcdef_kp")

    assert_refused(post(client, BODY, headers))


def test_a_signature_made_with_another_partners_secret_is_refused(client, partner) -> None:
    other = new_partner("metro")
    headers = signed_headers(partner.key_id, other.secret, BODY)

    assert_refused(post(client, BODY, headers))


@pytest.mark.parametrize("skew, status", [(-301, 401), (301, 401), (-299, 202), (299, 202)])
def test_the_timestamp_window_is_300_seconds_either_way(client, partner, skew, status) -> None:
    with time_machine.travel(datetime.now(UTC), tick=False):
        headers = signed_headers(partner.key_id, partner.secret, BODY, timestamp=int(time.time()) + skew)
        response = post(client, BODY, headers)

    assert response.status_code == status
    if status == 401:
        assert_refused(response)


def test_reserialised_json_fails_because_the_raw_bytes_are_signed(client, partner) -> None:
    headers = signed_headers(partner.key_id, partner.secret, BODY)
    same_json = json.dumps(json.loads(BODY), indent=2).encode()

    assert json.loads(same_json) == json.loads(BODY)
    assert_refused(post(client, same_json, headers))


def test_a_nonce_is_refused_the_second_time(client, partner) -> None:
    headers = signed_headers(partner.key_id, partner.secret, BODY)
    assert post(client, BODY, headers).status_code == 202

    assert_refused(post(client, BODY, headers), "nonce_reused")
    fresh = signed_headers(partner.key_id, partner.secret, BODY, nonce=headers["X-Nonce"])
    assert_refused(post(client, BODY, fresh), "nonce_reused")


def test_a_badly_signed_request_does_not_burn_the_nonce(client, partner) -> None:
    good = signed_headers(partner.key_id, partner.secret, BODY)
    forged = {**good, "X-Signature": "0" * 64}

    assert_refused(post(client, BODY, forged))
    assert post(client, BODY, good).status_code == 202


@pytest.mark.parametrize(
    "header, value",
    [
        ("X-Partner-Key", None),
        ("X-Timestamp", None),
        ("X-Nonce", None),
        ("X-Signature", None),
        ("X-Nonce", "short"),
        ("X-Nonce", "has spaces in the nonce value"),
        ("X-Timestamp", "2026-11-26T10:00:00Z"),
        ("X-Signature", ""),
    ],
)
def test_missing_or_malformed_signature_headers_are_refused(client, partner, header, value) -> None:
    headers = signed_headers(partner.key_id, partner.secret, BODY)
    if value is None:
        del headers[header]
    else:
        headers[header] = value

    assert_refused(post(client, BODY, headers))


def test_an_unknown_key_id_is_refused_like_a_bad_signature(client, partner) -> None:
    headers = signed_headers("pk_0000000000000000", partner.secret, BODY)

    response = post(client, BODY, headers)

    assert_refused(response)
    assert response.get_json()["error"]["message"] == "The request signature is invalid."


def test_after_rotation_both_secrets_work_until_the_old_one_expires(client, partner) -> None:
    new_key, new_secret = rotate_secret(partner.code, timedelta(hours=24))
    db.session.commit()

    assert post(client, BODY, signed_headers(partner.key_id, partner.secret, BODY)).status_code == 202
    assert post(client, BODY, signed_headers(new_key, new_secret, BODY)).status_code == 202

    with time_machine.travel(datetime.now(UTC) + timedelta(hours=24, seconds=1)):
        assert_refused(post(client, BODY, signed_headers(partner.key_id, partner.secret, BODY)))
        assert post(client, BODY, signed_headers(new_key, new_secret, BODY)).status_code == 202


def test_secrets_are_stored_encrypted(db_session, partner) -> None:
    stored = db_session.query(PartnerSecret).filter_by(key_id=partner.key_id).one()

    assert partner.secret.encode() not in stored.secret_enc


def test_a_suspended_partner_is_refused_with_403(client, partner) -> None:
    set_partner_status(partner.code, "suspended")
    db.session.commit()

    assert_refused(post(client, BODY, signed_headers(partner.key_id, partner.secret, BODY)), "partner_suspended", 403)


def test_a_suspended_partner_still_needs_a_valid_signature_to_learn_it_is_suspended(client, partner) -> None:
    set_partner_status(partner.code, "suspended")
    db.session.commit()
    headers = signed_headers(partner.key_id, partner.secret, BODY)
    headers["X-Signature"] = "f" * 64

    assert_refused(post(client, BODY, headers))


def test_partner_endpoints_answer_429_json_past_the_rate_limit(committed) -> None:
    """A second app with a tiny limit (its own engine, so the partner is really committed)."""
    from tests.conftest import make_app

    partner = new_partner("metro")
    committed.commit()
    limited = make_app(RATELIMIT_PARTNER="2 per minute")
    limited_client = limited.test_client()
    responses = [post(limited_client, BODY, signed_headers(partner.key_id, partner.secret, BODY)) for _ in range(3)]

    assert [r.status_code for r in responses] == [202, 202, 429], responses[0].get_json()
    assert responses[2].get_json()["error"]["code"] == "rate_limited"
    with limited.app_context():
        db.session.remove()
        db.engine.dispose()
