"""Sign-in with each provider end to end against its loopback double, refresh tokens, linking."""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import time_machine
from sqlalchemy import func, select

from app import crypto
from app.accounts.models import Citizen
from app.audit.models import AuditEntry
from app.auth.models import Identity, RefreshToken, SigningKey
from app.extensions import db
from app.models_base import utcnow
from doubles.alipay import user_id_for
from doubles.wechat import openid_for
from tests.auth.conftest import SSB_REDIRECT_URI, WECHAT_APPID, WECHAT_SECRET

PROVIDERS = ("wechat", "alipay", "suishenban")
CODE_LIFETIME = {"wechat": 300, "alipay": 24 * 3600, "suishenban": 600}


def _sign_in(client, provider: str, code: str):
    return client.post(f"/api/v1/auth/{provider}", json={"code": code})


def _error(response) -> str:
    return response.get_json()["error"]["code"]


def _audits(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _me(client, access_token: str):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {access_token}"})


# --- each provider, end to end ------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_first_sign_in_creates_a_citizen_and_answers_tokens(db_session, signin, providers, user, provider):
    response = _sign_in(signin, provider, providers.mint(provider, user))

    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert len(body["refresh_token"]) >= 43
    citizen = body["citizen"]
    assert citizen["linked_providers"] == [provider]
    assert citizen["consents_required"] is True
    assert citizen["home_district"] is None
    assert _me(signin, body["access_token"]).get_json()["id"] == citizen["id"]
    [login] = _audits("auth.login")
    assert login.actor_id == str(citizen["id"])
    assert login.details == {"provider": provider, "new_citizen": True}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_second_sign_in_finds_the_same_citizen(db_session, signin, providers, user, provider):
    first = _sign_in(signin, provider, providers.mint(provider, user)).get_json()
    second = _sign_in(signin, provider, providers.mint(provider, user)).get_json()

    assert second["citizen"]["id"] == first["citizen"]["id"]
    assert db_session.scalar(select(func.count()).select_from(Identity)) == 1
    assert [a.details["new_citizen"] for a in _audits("auth.login")] == [True, False]


def test_provider_subject_is_stored_only_encrypted_and_bound_to_its_row(db_session, signin, providers, user):
    _sign_in(signin, "wechat", providers.mint("wechat", user, unionid=True))

    identity = db_session.scalars(select(Identity)).one()
    openid = openid_for(WECHAT_APPID, user)
    assert identity.subject_idx == crypto.blind_index("identity:wechat", openid)
    assert openid.encode() not in identity.subject_enc
    assert crypto.decrypt(identity.subject_enc, f"identity:{identity.id}:subject") == openid
    with pytest.raises(Exception):  # noqa: B017 - any AEAD failure: another row's AAD does not open it
        crypto.decrypt(identity.subject_enc, f"identity:{identity.id + 1}:subject")
    assert identity.unionid_idx is not None


def test_alipay_subject_is_the_user_id(db_session, signin, providers, user):
    _sign_in(signin, "alipay", providers.mint("alipay", user))

    identity = db_session.scalars(select(Identity)).one()
    assert identity.subject_idx == crypto.blind_index("identity:alipay", user_id_for(user))


def test_suishenban_phone_is_kept_encrypted_and_shown_masked(db_session, signin, providers, user):
    body = _sign_in(signin, "suishenban", providers.mint("suishenban", user, phone="+8613812345678")).get_json()

    me = _me(signin, body["access_token"]).get_json()
    assert me["phone"] == "138****5678"
    citizen = db_session.get(Citizen, body["citizen"]["id"])
    assert citizen.phone_idx == crypto.blind_index("phone", "+8613812345678")
    assert b"13812345678" not in citizen.phone_enc
    assert crypto.decrypt(citizen.phone_enc, f"citizen:{citizen.id}:phone") == "+8613812345678"


def test_a_phone_already_on_another_account_is_not_copied(db_session, signin, providers, user):
    phone = "+8613900001111"
    first = _sign_in(signin, "suishenban", providers.mint("suishenban", user, phone=phone)).get_json()
    # A recycled number: another Suishenban user now verifies the same phone.
    other = _sign_in(signin, "suishenban", providers.mint("suishenban", user + "-b", phone=phone)).get_json()

    assert other["citizen"]["id"] != first["citizen"]["id"]
    assert _me(signin, other["access_token"]).get_json()["phone"] is None


def test_suishenban_h5_redirect_flow(db_session, signin, providers, user):
    response = signin.get("/api/v1/auth/suishenban/authorize-url", query_string={"state": "st-0123456789"})
    assert response.status_code == 200
    url = response.get_json()["url"]
    assert url.startswith(providers.suishenban.url + "/oauth2/authorize?")

    # The browser goes there; the double approves at once for a login_hint and redirects back.
    redirect = requests.get(url + f"&login_hint={user}", allow_redirects=False, timeout=2)
    location = urlsplit(redirect.headers["Location"])
    assert (location.netloc, location.path, location.fragment) == (
        urlsplit(SSB_REDIRECT_URI).netloc, urlsplit(SSB_REDIRECT_URI).path, "/pages/login/callback"
    )
    query = parse_qs(location.query)
    assert query["state"] == ["st-0123456789"]

    assert _sign_in(signin, "suishenban", query["code"][0]).status_code == 200


@pytest.mark.parametrize("state", ["", "short", "has spaces in it", "x" * 129])
def test_authorize_url_needs_a_proper_state(signin, state):
    response = signin.get("/api/v1/auth/suishenban/authorize-url", query_string={"state": state})
    assert response.status_code == 400
    assert _error(response) == "validation_error"


# --- provider refusals -----------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_login_code_works_once(db_session, signin, providers, user, provider):
    code = providers.mint(provider, user)
    assert _sign_in(signin, provider, code).status_code == 200

    response = _sign_in(signin, provider, code)

    assert response.status_code == 401
    assert _error(response) == "invalid_login_code"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_expired_login_code_is_refused(db_session, signin, providers, user, provider):
    code = providers.mint(provider, user)
    providers.clock.advance(CODE_LIFETIME[provider] + 1)

    response = _sign_in(signin, provider, code)

    assert response.status_code == 401
    assert _error(response) == "invalid_login_code"


def test_failed_logins_are_audited_with_provider_and_error_code_only(db_session, signin, providers):
    response = _sign_in(signin, "wechat", "not-a-code-we-minted")

    assert response.status_code == 401
    [failed] = _audits("auth.login_failed")  # kept although the request was answered with an error
    assert failed.actor_type == "anonymous"
    assert failed.details == {"provider": "wechat", "code": "invalid_login_code"}
    assert db_session.scalar(select(func.count()).select_from(Citizen)) == 0


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("rate_limit", 429, "provider_rate_limited"),  # errcode 45011
        ("high_risk", 403, "provider_high_risk_user"),  # errcode 40226
        ("busy", 502, "provider_unavailable"),  # errcode -1
        ("reset", 502, "provider_unavailable"),  # connection reset
        ("slow", 502, "provider_unavailable"),  # timeout
        ("malformed", 502, "provider_unavailable"),  # an HTML error page
    ],
)
def test_wechat_failures_answer_stable_errors(db_session, signin, providers, user, kind, status, code):
    providers.wechat.fail_next(kind)

    response = _sign_in(signin, "wechat", providers.mint("wechat", user))

    assert response.status_code == status
    assert _error(response) == code
    assert response.get_json()["error"]["message_zh"]
    assert [a.details for a in _audits("auth.login_failed")] == [{"provider": "wechat", "code": code}]


def test_provider_down_is_502(db_session, signin_app, monkeypatch, providers, user):
    with _closed_port() as url:
        monkeypatch.setitem(signin_app.config, "WECHAT_BASE_URL", url)
        monkeypatch.setitem(signin_app.extensions, "identity_providers", {})
        response = _sign_in(signin_app.test_client(), "wechat", providers.mint("wechat", user))

    assert response.status_code == 502
    assert _error(response) == "provider_unavailable"


def test_session_key_openid_and_secrets_never_reach_a_response_or_the_log(db_session, signin, providers, user, caplog):
    caplog.set_level(logging.DEBUG)
    code = providers.mint("wechat", user, unionid=True)

    response = _sign_in(signin, "wechat", code)
    refreshed = signin.post("/api/v1/auth/refresh", json={"refresh_token": response.get_json()["refresh_token"]})
    me = _me(signin, refreshed.get_json()["access_token"])

    session_key = providers.wechat.session_keys_issued[-1]  # the one issued for this login
    bodies = response.get_data(as_text=True) + refreshed.get_data(as_text=True) + me.get_data(as_text=True)
    for secret in (session_key, openid_for(WECHAT_APPID, user), WECHAT_SECRET):
        assert secret not in bodies
        assert secret not in caplog.text
    for secret in (code, response.get_json()["refresh_token"], response.get_json()["access_token"]):
        assert secret not in caplog.text


def test_ten_concurrent_first_logins_of_one_openid_make_one_citizen(
    committed, signin_app, providers, user, monkeypatch
):
    # The double listens with http.server's backlog of 5: 10 connects at once may wait for a SYN retry (1 s).
    monkeypatch.setitem(signin_app.config, "PROVIDER_TIMEOUT", 5.0)
    monkeypatch.setitem(signin_app.extensions, "identity_providers", {})
    codes = [providers.mint("wechat", user) for _ in range(10)]
    barrier = threading.Barrier(len(codes))
    answers: list[tuple[int, dict]] = []

    def sign_in(code: str) -> None:
        client = signin_app.test_client()  # each request: its own app context, session and connection
        barrier.wait()
        response = _sign_in(client, "wechat", code)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=sign_in, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [status for status, _ in answers] == [200] * 10
    assert len({body["citizen"]["id"] for _, body in answers}) == 1
    assert committed.scalar(select(func.count()).select_from(Citizen)) == 1
    assert committed.scalar(select(func.count()).select_from(Identity)) == 1
    assert committed.scalar(select(func.count()).select_from(SigningKey)) == 1
    assert [a.details["new_citizen"] for a in _audits("auth.login")].count(True) == 1


# --- refresh tokens ------------------------------------------------------------------

def _refresh(client, token: str):
    return client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_refresh_rotates_the_token(db_session, signin, providers, user):
    first = _sign_in(signin, "wechat", providers.mint("wechat", user)).get_json()

    response = _refresh(signin, first["refresh_token"])

    assert response.status_code == 200
    second = response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["citizen"]["id"] == first["citizen"]["id"]
    assert _me(signin, second["access_token"]).status_code == 200
    rows = db_session.scalars(select(RefreshToken).order_by(RefreshToken.id)).all()
    assert len(rows) == 2 and rows[0].family_id == rows[1].family_id
    assert rows[0].used_at is not None and rows[1].used_at is None
    assert rows[1].token_hash == crypto.token_hash(second["refresh_token"])  # stored hashed only


def test_reusing_a_used_refresh_token_revokes_the_whole_family(db_session, signin, providers, user):
    r1 = _sign_in(signin, "wechat", providers.mint("wechat", user)).get_json()["refresh_token"]
    r2 = _refresh(signin, r1).get_json()["refresh_token"]
    r3 = _refresh(signin, r2).get_json()["refresh_token"]

    replay = _refresh(signin, r1)

    assert replay.status_code == 401
    assert _error(replay) == "refresh_token_reused"
    assert db_session.scalar(select(func.count()).where(RefreshToken.revoked_at.is_(None))) == 0
    after = _refresh(signin, r3)  # the legitimate holder is signed out too
    assert after.status_code == 401
    assert _error(after) == "invalid_refresh_token"
    [reuse] = _audits("auth.refresh_reused")
    assert reuse.details == {"revoked": 3}


def test_another_device_keeps_its_own_family(db_session, signin, providers, user):
    phone_a = _sign_in(signin, "wechat", providers.mint("wechat", user)).get_json()["refresh_token"]
    phone_b = _sign_in(signin, "wechat", providers.mint("wechat", user)).get_json()["refresh_token"]
    _refresh(signin, phone_a)

    assert _refresh(signin, phone_a).status_code == 401

    assert _refresh(signin, phone_b).status_code == 200


@pytest.mark.parametrize("token", ["unknown-token", "x" * 43])
def test_unknown_refresh_token_is_401(db_session, signin, token):
    response = _refresh(signin, token)
    assert response.status_code == 401
    assert _error(response) == "invalid_refresh_token"


def test_expired_refresh_token_is_401(db_session, signin, providers, user):
    token = _sign_in(signin, "wechat", providers.mint("wechat", user)).get_json()["refresh_token"]

    with time_machine.travel(utcnow() + timedelta(days=31)):
        response = _refresh(signin, token)

    assert response.status_code == 401
    assert _error(response) == "invalid_refresh_token"


def test_logout_revokes_the_family(db_session, signin, providers, user):
    r1 = _sign_in(signin, "wechat", providers.mint("wechat", user)).get_json()["refresh_token"]
    r2 = _refresh(signin, r1).get_json()["refresh_token"]

    assert signin.post("/api/v1/auth/logout", json={"refresh_token": r2}).status_code == 204

    response = _refresh(signin, r2)
    assert response.status_code == 401
    assert _error(response) == "invalid_refresh_token"
    assert len(_audits("auth.logout")) == 1
    assert signin.post("/api/v1/auth/logout", json={"refresh_token": "never-issued"}).status_code == 204


def test_concurrent_refreshes_of_one_token_let_exactly_one_through(committed, signin_app, providers, user):
    client = signin_app.test_client()
    token = _sign_in(client, "wechat", providers.mint("wechat", user)).get_json()["refresh_token"]
    barrier = threading.Barrier(6)
    statuses: list[tuple[int, str | None]] = []

    def refresh() -> None:
        own = signin_app.test_client()
        barrier.wait()
        response = _refresh(own, token)
        statuses.append((response.status_code, (response.get_json().get("error") or {}).get("code")))

    threads = [threading.Thread(target=refresh) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(statuses, key=str) == [(200, None)] + [(401, "refresh_token_reused")] * 5
    assert committed.scalar(select(func.count()).where(RefreshToken.revoked_at.is_(None))) == 0


# --- rate limit ------------------------------------------------------------------------

def test_sign_in_and_refresh_are_rate_limited_per_client_address(db_session, signin_app, monkeypatch):
    monkeypatch.setitem(signin_app.config, "RATELIMIT_AUTH", "2 per minute")  # read on every request
    client = signin_app.test_client()
    for _ in range(2):
        assert _sign_in(client, "wechat", "bad-code").status_code == 401

    limited = _sign_in(client, "wechat", "bad-code")

    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert limited.get_json()["error"]["message_zh"]
    assert limited.headers.get("Retry-After")
    # Another client address has its own allowance.
    other = client.post("/api/v1/auth/wechat", json={"code": "bad"}, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert other.status_code == 401
    for _ in range(2):
        _refresh(client, "nope")
    assert _refresh(client, "nope").status_code == 429


# --- linking ------------------------------------------------------------------------------

def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _link(client, token: str, provider: str, code: str):
    return client.post(f"/api/v1/me/identities/{provider}", json={"code": code}, headers=_auth(token))


@pytest.fixture
def wechat_citizen(db_session, signin, providers, user) -> dict:
    return _sign_in(signin, "wechat", providers.mint("wechat", user)).get_json()


def test_link_another_provider_then_sign_in_with_it(db_session, signin, providers, user, wechat_citizen):
    token = wechat_citizen["access_token"]

    response = _link(signin, token, "alipay", providers.mint("alipay", user))

    assert response.status_code == 201
    assert response.get_json()["provider"] == "alipay"
    listed = signin.get("/api/v1/me/identities", headers=_auth(token)).get_json()["items"]
    assert sorted(i["provider"] for i in listed) == ["alipay", "wechat"]
    assert all(set(i) == {"provider", "linked_at", "last_login_at"} for i in listed)  # never a subject
    again = _sign_in(signin, "alipay", providers.mint("alipay", user)).get_json()
    assert again["citizen"]["id"] == wechat_citizen["citizen"]["id"]
    assert again["citizen"]["linked_providers"] == ["alipay", "wechat"]
    assert [a.details for a in _audits("auth.identity_linked")] == [{"provider": "alipay"}]


def test_linking_suishenban_brings_its_verified_phone(db_session, signin, providers, user, wechat_citizen):
    token = wechat_citizen["access_token"]
    _link(signin, token, "suishenban", providers.mint("suishenban", user, phone="+8613700001234"))

    assert _me(signin, token).get_json()["phone"] == "137****1234"


def test_linking_a_provider_account_of_another_citizen_is_409(db_session, signin, providers, user, wechat_citizen):
    _sign_in(signin, "alipay", providers.mint("alipay", "someone-else-" + user))

    response = _link(signin, wechat_citizen["access_token"], "alipay", providers.mint("alipay", "someone-else-" + user))

    assert response.status_code == 409
    assert _error(response) == "identity_already_linked"


def test_linking_a_second_account_of_the_same_provider_is_409(db_session, signin, providers, user, wechat_citizen):
    response = _link(signin, wechat_citizen["access_token"], "wechat", providers.mint("wechat", user + "-2"))

    assert response.status_code == 409
    assert _error(response) == "provider_already_linked"


def test_linking_needs_a_valid_code_and_a_known_provider(db_session, signin, wechat_citizen):
    token = wechat_citizen["access_token"]
    assert _error(_link(signin, token, "alipay", "forged")) == "invalid_login_code"
    assert _link(signin, token, "qq", "whatever").status_code == 404
    assert signin.post("/api/v1/me/identities/alipay", json={"code": "x"}).status_code == 401


def test_unlink_keeps_at_least_one_way_to_sign_in(db_session, signin, providers, user, wechat_citizen):
    token = wechat_citizen["access_token"]
    _link(signin, token, "alipay", providers.mint("alipay", user))

    assert signin.delete("/api/v1/me/identities/alipay", headers=_auth(token)).status_code == 204
    last = signin.delete("/api/v1/me/identities/wechat", headers=_auth(token))

    assert last.status_code == 409
    assert _error(last) == "last_identity"
    assert signin.delete("/api/v1/me/identities/alipay", headers=_auth(token)).status_code == 404
    assert [a.details for a in _audits("auth.identity_unlinked")] == [{"provider": "alipay"}]
    # The unlinked Alipay account now signs in as a new citizen.
    fresh = _sign_in(signin, "alipay", providers.mint("alipay", user)).get_json()
    assert fresh["citizen"]["id"] != wechat_citizen["citizen"]["id"]


# --- helpers ---------------------------------------------------------------------------------

class _closed_port:  # noqa: N801 - used as a context manager
    """A loopback URL nothing listens on."""

    def __enter__(self) -> str:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        return None
