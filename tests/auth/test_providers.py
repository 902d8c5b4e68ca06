"""The identity-provider clients against loopback doubles that behave like the real services."""
from __future__ import annotations

import base64
import dataclasses
import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.auth.providers import (
    AlipayClient,
    IdentityProvider,
    ProviderIdentity,
    SuishenbanClient,
    WeChatClient,
    check_provider_url,
)
from app.errors import AppError
from doubles import AlipayDouble, SuishenbanDouble, WeChatDouble
from doubles.alipay import user_id_for
from doubles.wechat import openid_for, unionid_for

APPID, SECRET = "wx1234567890abcdef", "wechat-app-secret-0123456789"
ALIPAY_APP_ID = "2021004100000001"
SSB_CLIENT_ID, SSB_SECRET = "carbon-h5", "suishenban-client-secret-42"
REDIRECT_URI = "https://carbon.example.sh.cn/m/login/callback"
TIMEOUT = 0.3  # short, so the slow-provider tests finish quickly


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_public(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(scope="session")
def rsa_keys() -> dict[str, rsa.RSAPrivateKey]:
    """Generated once: 2048-bit keys are slow-ish to make."""
    return {name: rsa.generate_private_key(65537, 2048) for name in ("app", "other", "alipay")}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wechat_double(clock):
    with WeChatDouble(APPID, SECRET, clock) as double:
        yield double


@pytest.fixture
def wechat(wechat_double) -> WeChatClient:
    return WeChatClient(wechat_double.url, APPID, SECRET, timeout=TIMEOUT)


@pytest.fixture
def alipay_double(clock, rsa_keys):
    app_public = _pem_public(rsa_keys["app"])
    with AlipayDouble(ALIPAY_APP_ID, app_public, clock, alipay_private_key=rsa_keys["alipay"]) as double:
        yield double


@pytest.fixture
def alipay(alipay_double, rsa_keys) -> AlipayClient:
    return AlipayClient(
        alipay_double.url,
        ALIPAY_APP_ID,
        _pem_private(rsa_keys["app"]),
        timeout=TIMEOUT,
        alipay_public_key_pem=alipay_double.alipay_public_key_pem,
    )


@pytest.fixture
def ssb_double(clock):
    with SuishenbanDouble(SSB_CLIENT_ID, SSB_SECRET, REDIRECT_URI, clock) as double:
        yield double


@pytest.fixture
def ssb(ssb_double) -> SuishenbanClient:
    return SuishenbanClient(ssb_double.url, SSB_CLIENT_ID, SSB_SECRET, REDIRECT_URI, timeout=TIMEOUT)


def _refused(exchange, code: str) -> AppError:
    with pytest.raises(AppError) as info:
        exchange(code)
    return info.value


# --- WeChat code2Session -----------------------------------------------------

def test_wechat_login_returns_the_openid_and_nothing_secret(wechat, wechat_double):
    identity = wechat.exchange(wechat_double.mint_code("alice"))

    assert identity == ProviderIdentity("wechat", openid_for(APPID, "alice"))
    assert len(identity.subject) == 28 and identity.subject.startswith("o")
    assert identity.unionid is None and identity.phone is None
    assert [f.name for f in dataclasses.fields(identity)] == ["provider", "subject", "unionid", "phone"]
    [session_key] = wechat_double.session_keys_issued
    assert session_key not in repr(identity) and session_key not in repr(wechat)
    assert SECRET not in repr(wechat)


def test_wechat_request_is_what_code2session_expects(wechat, wechat_double):
    code = wechat_double.mint_code("alice")
    wechat.exchange(code)

    [request] = wechat_double.requests
    assert (request["method"], request["path"]) == ("GET", "/sns/jscode2session")
    assert request["query"] == {
        "appid": APPID, "secret": SECRET, "js_code": code, "grant_type": "authorization_code"
    }


def test_wechat_unionid_only_when_the_user_has_one(wechat, wechat_double):
    with_union = wechat.exchange(wechat_double.mint_code("bob", unionid=True))
    assert with_union.unionid == unionid_for("bob")
    assert wechat.exchange(wechat_double.mint_code("bob")).unionid is None


def test_wechat_openid_is_stable_per_user_and_appid_and_session_key_is_fresh(wechat, wechat_double):
    first = wechat.exchange(wechat_double.mint_code("carol"))
    second = wechat.exchange(wechat_double.mint_code("carol"))
    other = wechat.exchange(wechat_double.mint_code("dave"))

    assert first.subject == second.subject != other.subject
    assert openid_for("wx-another-app", "carol") != first.subject
    assert len(set(wechat_double.session_keys_issued)) == 3


def test_wechat_code_is_single_use(wechat, wechat_double):
    code = wechat_double.mint_code("alice")
    wechat.exchange(code)

    error = _refused(wechat.exchange, code)
    assert (error.status, error.code) == (401, "invalid_login_code")
    assert error.message_zh == "登录凭证无效或已过期。"


def test_wechat_code_expires_after_five_minutes(wechat, wechat_double, clock):
    fresh, stale = wechat_double.mint_code("alice"), wechat_double.mint_code("alice")
    clock.advance(299)
    assert wechat.exchange(fresh).subject == openid_for(APPID, "alice")
    clock.advance(2)
    assert _refused(wechat.exchange, stale).code == "invalid_login_code"


@pytest.mark.parametrize("code", ["never-minted", ""])
def test_wechat_unknown_or_empty_code_is_refused(wechat, code):
    error = _refused(wechat.exchange, code)
    assert (error.status, error.code) == (401, "invalid_login_code")


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("busy", 502, "provider_unavailable"),
        ("rate_limit", 429, "provider_rate_limited"),
        ("high_risk", 403, "provider_high_risk_user"),
        ("slow", 502, "provider_unavailable"),
        ("reset", 502, "provider_unavailable"),
        ("malformed", 502, "provider_unavailable"),
    ],
)
def test_wechat_failures_map_to_app_errors(wechat, wechat_double, kind, status, code):
    wechat_double.fail_next(kind)
    started = time.monotonic()

    error = _refused(wechat.exchange, wechat_double.mint_code("alice"))

    assert (error.status, error.code) == (status, code)
    assert time.monotonic() - started < 0.9  # the slow double sleeps 1 s; we give up at 0.3 s


def test_wechat_rate_limit_is_100_logins_per_user_per_minute(wechat, wechat_double, clock):
    for _ in range(100):
        wechat.exchange(wechat_double.mint_code("eve"))
    assert _refused(wechat.exchange, wechat_double.mint_code("eve")).code == "provider_rate_limited"
    wechat.exchange(wechat_double.mint_code("frank"))  # other users are unaffected
    clock.advance(61)
    wechat.exchange(wechat_double.mint_code("eve"))


@pytest.mark.parametrize(
    ("appid", "secret", "errcode"), [("wx-wrong", SECRET, 40013), (APPID, "wrong", 40125)]
)
def test_wechat_wrong_app_credentials_are_our_fault(wechat_double, caplog, appid, secret, errcode):
    client = WeChatClient(wechat_double.url, appid, secret, timeout=TIMEOUT)
    with caplog.at_level(logging.INFO, logger="app.auth.providers"):
        error = _refused(client.exchange, wechat_double.mint_code("alice"))

    assert (error.status, error.code) == (502, "provider_unavailable")
    assert any(r.levelno == logging.ERROR and f"errcode={errcode}" in r.getMessage() for r in caplog.records)


def test_wechat_double_answers_errors_in_the_body_with_status_200(wechat_double):
    answer = requests.get(
        f"{wechat_double.url}/sns/jscode2session",
        params={"appid": APPID, "secret": SECRET, "js_code": "x", "grant_type": "client_credential"},
        timeout=2,
    )
    assert answer.status_code == 200
    assert answer.json()["errcode"] == 40002 and "rid: " in answer.json()["errmsg"]
    assert requests.get(f"{wechat_double.url}/cgi-bin/token", timeout=2).status_code == 404


def test_wechat_session_key_secret_and_code_never_reach_the_logs(wechat, wechat_double, caplog):
    caplog.set_level(logging.DEBUG)
    codes = [wechat_double.mint_code("alice") for _ in range(2)]
    wechat.exchange(codes[0])
    for kind in ("busy", "reset", "malformed"):
        wechat_double.fail_next(kind)
        with pytest.raises(AppError):
            wechat.exchange(codes[1])
    with pytest.raises(AppError):
        wechat.exchange(codes[0])

    assert "jscode2session" in caplog.text  # urllib3 did log the request line...
    for secret in [SECRET, *codes, *wechat_double.session_keys_issued]:
        assert secret not in caplog.text  # ...with the secret and code redacted


# --- Alipay alipay.system.oauth.token ---------------------------------------

def test_alipay_login_returns_the_user_id(alipay, alipay_double):
    identity = alipay.exchange(alipay_double.mint_code("alice"))

    assert identity == ProviderIdentity("alipay", user_id_for("alice"))
    assert identity.subject.startswith("2088") and len(identity.subject) == 16
    assert alipay.exchange(alipay_double.mint_code("alice")).subject == identity.subject


def test_alipay_request_is_a_signed_gateway_call(alipay, alipay_double):
    code = alipay_double.mint_code("alice")
    alipay.exchange(code)

    [request] = alipay_double.requests
    form = request["form"]
    assert (request["method"], request["path"]) == ("POST", "/gateway.do")
    assert form["method"] == "alipay.system.oauth.token" and form["code"] == code
    assert (form["app_id"], form["sign_type"], form["charset"], form["format"], form["version"]) == (
        ALIPAY_APP_ID, "RSA2", "utf-8", "JSON", "1.0"
    )
    assert len(base64.b64decode(form["sign"])) == 256  # RSA-2048 signature


def test_alipay_code_is_single_use(alipay, alipay_double):
    code = alipay_double.mint_code("alice")
    alipay.exchange(code)
    error = _refused(alipay.exchange, code)
    assert (error.status, error.code) == (401, "invalid_login_code")


def test_alipay_code_expires_after_a_day_unused(alipay, alipay_double, clock):
    fresh, stale = alipay_double.mint_code("alice"), alipay_double.mint_code("alice")
    clock.advance(24 * 3600 - 1)
    alipay.exchange(fresh)
    clock.advance(2)
    assert _refused(alipay.exchange, stale).code == "invalid_login_code"


def test_alipay_request_signed_with_another_key_is_refused(alipay_double, rsa_keys, caplog):
    client = AlipayClient(alipay_double.url, ALIPAY_APP_ID, _pem_private(rsa_keys["other"]), timeout=TIMEOUT)
    with caplog.at_level(logging.INFO, logger="app.auth.providers"):
        error = _refused(client.exchange, alipay_double.mint_code("alice"))

    assert (error.status, error.code) == (502, "provider_unavailable")  # our key is wrong, not the citizen
    assert "isv.invalid-signature" in caplog.text


def test_alipay_answer_signed_by_someone_else_is_refused(alipay_double, rsa_keys):
    client = AlipayClient(
        alipay_double.url, ALIPAY_APP_ID, _pem_private(rsa_keys["app"]), timeout=TIMEOUT,
        alipay_public_key_pem=_pem_public(rsa_keys["other"]),
    )
    assert _refused(client.exchange, alipay_double.mint_code("alice")).code == "provider_unavailable"


def test_alipay_key_may_be_the_bare_base64_alipay_tools_print(alipay_double, rsa_keys):
    bare = "".join(_pem_private(rsa_keys["app"]).strip().splitlines()[1:-1])
    client = AlipayClient(alipay_double.url, ALIPAY_APP_ID, bare, timeout=TIMEOUT)
    assert client.exchange(alipay_double.mint_code("alice")).subject == user_id_for("alice")


def test_alipay_wrong_app_id_is_our_fault(alipay_double, rsa_keys):
    wrong_app_id = "2021000000000999"
    client = AlipayClient(alipay_double.url, wrong_app_id, _pem_private(rsa_keys["app"]), timeout=TIMEOUT)
    assert _refused(client.exchange, alipay_double.mint_code("alice")).status == 502


@pytest.mark.parametrize("kind", ["busy", "slow", "reset", "malformed"])
def test_alipay_failures_are_provider_unavailable(alipay, alipay_double, kind):
    alipay_double.fail_next(kind)
    started = time.monotonic()
    error = _refused(alipay.exchange, alipay_double.mint_code("alice"))
    assert (error.status, error.code) == (502, "provider_unavailable")
    assert time.monotonic() - started < 0.9


# --- Suishenban OAuth2 --------------------------------------------------------

def test_suishenban_login_returns_sub_and_verified_phone(ssb, ssb_double):
    identity = ssb.exchange(ssb_double.mint_code("alice", phone="+8613800138000"))
    assert identity == ProviderIdentity("suishenban", ssb_double.sub("alice"), phone="+8613800138000")


def test_suishenban_phone_is_absent_when_the_user_has_none(ssb, ssb_double):
    assert ssb.exchange(ssb_double.mint_code("bob")).phone is None


def test_suishenban_bare_mainland_mobile_becomes_e164(ssb, ssb_double):
    assert ssb.exchange(ssb_double.mint_code("carol", phone="13912345678")).phone == "+8613912345678"


def test_suishenban_code_is_single_use_and_reuse_revokes_the_token(ssb, ssb_double):
    code = ssb_double.mint_code("alice")
    ssb.exchange(code)
    [token] = ssb_double._tokens

    error = _refused(ssb.exchange, code)
    assert (error.status, error.code) == (401, "invalid_login_code")
    answer = requests.get(f"{ssb_double.url}/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"},
                          timeout=2)
    assert answer.status_code == 401 and answer.json() == {"error": "invalid_token"}


def test_suishenban_code_expires_after_ten_minutes(ssb, ssb_double, clock):
    fresh, stale = ssb_double.mint_code("alice"), ssb_double.mint_code("alice")
    clock.advance(599)
    ssb.exchange(fresh)
    clock.advance(2)
    assert _refused(ssb.exchange, stale).code == "invalid_login_code"


def test_suishenban_code_is_bound_to_its_redirect_uri(ssb, ssb_double):
    code = ssb_double.mint_code("alice", redirect_uri="https://elsewhere.example/cb")
    assert _refused(ssb.exchange, code).code == "invalid_login_code"


def test_suishenban_wrong_client_secret_is_our_fault(ssb_double, caplog):
    client = SuishenbanClient(ssb_double.url, SSB_CLIENT_ID, "wrong", REDIRECT_URI, timeout=TIMEOUT)
    with caplog.at_level(logging.INFO, logger="app.auth.providers"):
        error = _refused(client.exchange, ssb_double.mint_code("alice"))

    assert (error.status, error.code) == (502, "provider_unavailable")
    assert any(r.levelno == logging.ERROR and "invalid_client" in r.getMessage() for r in caplog.records)


def test_suishenban_double_accepts_http_basic_client_auth_but_not_both(ssb_double):
    basic = requests.auth.HTTPBasicAuth(SSB_CLIENT_ID, SSB_SECRET)
    token_url = f"{ssb_double.url}/oauth2/token"
    code = ssb_double.mint_code("a")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    ok = requests.post(token_url, data=form, auth=basic, timeout=2)
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] == 7200

    both = {**form, "code": ssb_double.mint_code("a"), "client_secret": SSB_SECRET}
    assert requests.post(token_url, data=both, auth=basic, timeout=2).status_code == 400
    wrong = requests.auth.HTTPBasicAuth(SSB_CLIENT_ID, "nope")
    refused = requests.post(token_url, data=form, auth=wrong, timeout=2)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert refused.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("kind", "path", "status", "code"),
    [
        ("busy", None, 502, "provider_unavailable"),
        ("rate_limit", None, 429, "provider_rate_limited"),
        ("slow", None, 502, "provider_unavailable"),
        ("reset", None, 502, "provider_unavailable"),
        ("malformed", None, 502, "provider_unavailable"),
        ("busy", "/oauth2/userinfo", 502, "provider_unavailable"),
        ("malformed", "/oauth2/userinfo", 502, "provider_unavailable"),
    ],
)
def test_suishenban_failures_map_to_app_errors(ssb, ssb_double, kind, path, status, code):
    ssb_double.fail_next(kind, path=path)
    started = time.monotonic()
    error = _refused(ssb.exchange, ssb_double.mint_code("alice"))
    assert (error.status, error.code) == (status, code)
    assert time.monotonic() - started < 0.9


def test_suishenban_h5_redirect_flow(ssb, ssb_double):
    url = ssb.authorize_url(state="st-123")
    parts = urlsplit(url)
    assert url.startswith(f"{ssb_double.url}/oauth2/authorize?")
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": [SSB_CLIENT_ID],
        "redirect_uri": [REDIRECT_URI],
        "state": ["st-123"],
    }

    page = requests.get(url, timeout=2)
    assert page.status_code == 200 and "<form" in page.text

    approved = requests.get(url + "&login_hint=alice", allow_redirects=False, timeout=2)
    assert approved.status_code == 302
    location = urlsplit(approved.headers["Location"])
    assert location._replace(query="").geturl() == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    assert ssb.exchange(query["code"][0]).subject == ssb_double.sub("alice")


def test_suishenban_authorize_never_redirects_to_an_unregistered_uri(ssb_double):
    evil = requests.get(
        f"{ssb_double.url}/oauth2/authorize",
        params={"response_type": "code", "client_id": SSB_CLIENT_ID, "redirect_uri": "https://evil.example/",
                "login_hint": "alice"},
        allow_redirects=False, timeout=2,
    )
    assert evil.status_code == 400 and "Location" not in evil.headers


def test_suishenban_tokens_and_phone_never_reach_the_logs(ssb, ssb_double, caplog):
    caplog.set_level(logging.DEBUG)
    code = ssb_double.mint_code("alice", phone="+8613800138000")
    ssb.exchange(code)
    with pytest.raises(AppError):
        ssb.exchange(code)

    for secret in [SSB_SECRET, code, "13800138000", *ssb_double._tokens]:
        assert secret not in caplog.text


# --- every provider ------------------------------------------------------------

def test_clients_satisfy_the_identity_provider_protocol(wechat, alipay, ssb):
    providers: list[IdentityProvider] = [wechat, alipay, ssb]
    assert [p.name for p in providers] == ["wechat", "alipay", "suishenban"]


def test_dev_endpoint_mints_codes_for_demo_users(wechat, wechat_double, ssb, ssb_double):
    answer = requests.post(f"{wechat_double.url}/__double__/codes", json={"user": "demo"}, timeout=2)
    assert wechat.exchange(answer.json()["code"]).subject == openid_for(APPID, "demo")

    demo = {"user": "demo", "phone": "+8613700000000"}
    answer = requests.post(f"{ssb_double.url}/__double__/codes", json=demo, timeout=2)
    assert ssb.exchange(answer.json()["code"]).phone == "+8613700000000"

    requests.post(f"{wechat_double.url}/__double__/fail", json={"kind": "high_risk"}, timeout=2)
    assert _refused(wechat.exchange, wechat_double.mint_code("demo")).code == "provider_high_risk_user"
    assert wechat_double.requests[-1]["path"] == "/sns/jscode2session"  # dev calls are not recorded


def test_unreachable_provider_is_unavailable():
    with WeChatDouble(APPID, SECRET) as double:
        url = double.url
    error = _refused(WeChatClient(url, APPID, SECRET, timeout=TIMEOUT).exchange, "any-code")
    assert (error.status, error.code) == (502, "provider_unavailable")


# --- check_provider_url ------------------------------------------------------

@pytest.mark.parametrize(
    "url",
    [
        "https://api.weixin.qq.com",
        "https://openapi.alipay.com/",
        "https://zwdt.sh.gov.cn:443/base",
        "https://172.32.0.1",  # just outside 172.16/12
        "https://8.8.8.8",
    ],
)
def test_production_accepts_public_https(url):
    check_provider_url(url, production=True)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://api.weixin.qq.com", "api.weixin.qq.com"),
        ("https://localhost:8443", "localhost"),
        ("https://LOCALHOST.", "localhost"),
        ("https://wechat.localhost", "wechat.localhost"),
        ("https://127.0.0.1", "127.0.0.1"),
        ("https://127.8.9.10", "127.8.9.10"),
        ("https://127.1", "127.1"),
        ("https://2130706433", "2130706433"),
        ("https://0x7f000001", "0x7f000001"),
        ("https://[::1]:443", "::1"),
        ("https://[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("https://10.1.2.3", "10.1.2.3"),
        ("https://172.16.0.1", "172.16.0.1"),
        ("https://172.31.255.255", "172.31.255.255"),
        ("https://192.168.1.10", "192.168.1.10"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("https://[fe80::1]", "fe80::1"),
        ("https://0.0.0.0", "0.0.0.0"),
        ("https://ops:pw@api.weixin.qq.com", "api.weixin.qq.com"),
    ],
)
def test_production_refuses_plain_http_and_internal_hosts(url, host):
    with pytest.raises(ValueError, match=host.replace(".", r"\.").replace("[", "")):
        check_provider_url(url, production=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:5101", "http://localhost:5103/", "https://10.0.0.5"])
def test_outside_production_any_http_url_is_allowed(url):
    check_provider_url(url, production=False)


@pytest.mark.parametrize("url", ["ftp://api.weixin.qq.com", "127.0.0.1:5101", "javascript:alert(1)", "https://"])
@pytest.mark.parametrize("production", [True, False])
def test_non_http_urls_are_always_refused(url, production):
    with pytest.raises(ValueError):
        check_provider_url(url, production=production)
