"""The JWT negative matrix: every forged, stale or malformed access token is the same 401."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth.tokens import (
    active_signing_key,
    encode_with_key,
    issue_access_token,
    retire_signing_key,
    rotate_signing_key,
)
from app.models_base import utcnow


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _segment(value: dict) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


@pytest.fixture(autouse=True)
def _arranged(db_session, citizen_id) -> None:
    """The citizen and a signing key, committed to the test's savepoint: a 401 answer rolls back
    the request's session, which in tests is the test's own, so uncommitted setup would vanish."""
    active_signing_key()
    db_session.commit()


@pytest.fixture
def claims(app, citizen_id) -> dict:
    now = int(time.time())
    return {
        "iss": app.config["JWT_ISSUER"],
        "aud": app.config["JWT_AUDIENCE"],
        "sub": f"citizen:{citizen_id}",
        "role": "citizen",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
    }


def _get_me(client, token: str):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _assert_invalid(response) -> None:
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_well_formed_token_is_accepted(client, claims):
    token = encode_with_key(active_signing_key(), claims)
    assert _get_me(client, token).status_code == 200


def test_alg_none_is_refused(client, claims):
    kid = active_signing_key().kid
    token = f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}."
    _assert_invalid(_get_me(client, token))


def test_hs256_signed_with_our_public_key_as_the_secret_is_refused(client, claims):
    key = active_signing_key()
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{_segment(claims)}"
    signature = hmac.new(key.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    _assert_invalid(_get_me(client, f"{signing_input}.{_b64(signature)}"))


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub"])
def test_each_required_claim_missing_is_refused(client, claims, missing):
    del claims[missing]
    _assert_invalid(_get_me(client, encode_with_key(active_signing_key(), claims)))


@pytest.mark.parametrize(
    ("claim", "value"),
    [("aud", "another-api"), ("iss", "https://evil.example"), ("sub", 42), ("aud", ["another-api"])],
)
def test_wrong_audience_issuer_or_subject_is_refused(client, claims, claim, value):
    claims[claim] = value
    _assert_invalid(_get_me(client, encode_with_key(active_signing_key(), claims)))


def test_an_expired_token_is_refused(client, citizen_id):
    token, ttl = issue_access_token(f"citizen:{citizen_id}")
    assert ttl == 15 * 60
    with time_machine.travel(utcnow() + timedelta(seconds=ttl + 1)):
        _assert_invalid(_get_me(client, token))
    with time_machine.travel(utcnow() + timedelta(seconds=ttl - 30)):
        assert _get_me(client, token).status_code == 200


def test_a_token_not_yet_valid_is_refused(client, claims):
    claims["nbf"] = claims["iat"] + 600
    _assert_invalid(_get_me(client, encode_with_key(active_signing_key(), claims)))


@pytest.mark.parametrize("kid", ["kdeadbeefdeadbeef", "../../etc/passwd", "k1' OR '1'='1", "", "x" * 65, 7])
def test_unknown_or_malformed_kid_is_refused(client, claims, kid):
    real = encode_with_key(active_signing_key(), claims)
    header = json.loads(base64.urlsafe_b64decode(real.split(".")[0] + "=="))
    header["kid"] = kid
    forged = ".".join([_segment(header), *real.split(".")[1:]])
    _assert_invalid(_get_me(client, forged))


def test_a_token_without_kid_is_refused(client, claims):
    private = ec.generate_private_key(ec.SECP256R1())
    _assert_invalid(_get_me(client, jwt.encode(claims, private, algorithm="ES256")))


def test_a_token_signed_by_another_key_under_our_kid_is_refused(client, claims):
    attacker = ec.generate_private_key(ec.SECP256R1())
    public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key()))
    token = jwt.encode(
        claims,
        attacker,
        algorithm="ES256",
        headers={"kid": active_signing_key().kid, "jwk": public_jwk, "jku": "https://evil.example/jwks.json"},
    )
    _assert_invalid(_get_me(client, token))


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "Bearer", "e30.e30.e30"])
def test_garbage_is_refused(client, token):
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] in ("invalid_token", "unauthorized")


def test_no_token_at_all_is_401(client, db_session):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_retired_key_no_longer_verifies(client, db_session, citizen_id):
    token, _ = issue_access_token(f"citizen:{citizen_id}")
    kid = jwt.get_unverified_header(token)["kid"]

    assert retire_signing_key(kid) is True
    db_session.commit()  # as the CLI or job that retires a key would

    _assert_invalid(_get_me(client, token))
    assert retire_signing_key("kunknown") is False


def test_rotation_overlap_old_tokens_verify_until_the_old_key_is_retired(client, db_session, citizen_id):
    old_token, _ = issue_access_token(f"citizen:{citizen_id}")
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    new_key = rotate_signing_key()
    db_session.commit()
    new_token, _ = issue_access_token(f"citizen:{citizen_id}")

    assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid != old_kid
    assert _get_me(client, old_token).status_code == 200
    assert _get_me(client, new_token).status_code == 200

    retire_signing_key(old_kid)
    db_session.commit()

    _assert_invalid(_get_me(client, old_token))
    assert _get_me(client, new_token).status_code == 200
    actions = db_session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "signing_key")).all()
    assert actions == ["auth.signing_key_created", "auth.signing_key_retired"]


def test_signing_keys_are_stored_encrypted(db_session):
    key = active_signing_key()
    assert b"PRIVATE KEY" not in key.private_enc
    public = serialization.load_pem_public_key(key.public_pem.encode())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert key.algorithm == "ES256"


def test_a_closed_account_token_is_refused(client, db_session, citizen_id):
    from app.accounts.models import Citizen

    token, _ = issue_access_token(f"citizen:{citizen_id}")
    db_session.get(Citizen, citizen_id).status = "closed"
    db_session.flush()
    _assert_invalid(_get_me(client, token))
