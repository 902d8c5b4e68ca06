"""Sign-in fixtures: the provider doubles on loopback and the app configured to call them.

The doubles are started once per session (RSA key pairs are not free); each test gets them
reset (recorded requests, pending failures). Users are named uniquely per test because WeChat's
double counts logins per user per minute on a shared clock.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient

from doubles import AlipayDouble, SuishenbanDouble, WeChatDouble

WECHAT_APPID, WECHAT_SECRET = "wx-signin-test-appid", "wechat-signin-test-secret-0123456789"
ALIPAY_APP_ID = "2021004100000042"
SSB_CLIENT_ID, SSB_SECRET = "carbon-signin-test", "suishenban-signin-test-secret-42"
SSB_REDIRECT_URI = "https://carbon.example.sh.cn/m/#/pages/login/callback"
PROVIDER_TIMEOUT = 0.3


class FakeClock:
    """The doubles' clock: codes expire when a test moves it, not when the suite is slow."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Providers:
    clock: FakeClock
    wechat: WeChatDouble
    alipay: AlipayDouble
    suishenban: SuishenbanDouble
    alipay_app_private_pem: str

    def reset(self) -> None:
        for double in (self.wechat, self.alipay, self.suishenban):
            double.reset()

    def config(self) -> dict[str, Any]:
        """App settings that point every provider client at its double."""
        return {
            "WECHAT_BASE_URL": self.wechat.url,
            "WECHAT_APPID": WECHAT_APPID,
            "WECHAT_SECRET": WECHAT_SECRET,
            "ALIPAY_BASE_URL": self.alipay.url,
            "ALIPAY_APP_ID": ALIPAY_APP_ID,
            "ALIPAY_PRIVATE_KEY": self.alipay_app_private_pem,
            "ALIPAY_PUBLIC_KEY": self.alipay.alipay_public_key_pem,
            "SUISHENBAN_BASE_URL": self.suishenban.url,
            "SUISHENBAN_CLIENT_ID": SSB_CLIENT_ID,
            "SUISHENBAN_CLIENT_SECRET": SSB_SECRET,
            "SUISHENBAN_REDIRECT_URI": SSB_REDIRECT_URI,
            "PROVIDER_TIMEOUT": PROVIDER_TIMEOUT,
        }

    def mint(self, provider: str, user: str, **kwargs: Any) -> str:
        """A fresh login code for `user`, as the mini-program or H5 page would receive it."""
        double = {"wechat": self.wechat, "alipay": self.alipay, "suishenban": self.suishenban}[provider]
        return double.mint_code(user, **kwargs)


def _pem(key: rsa.RSAPrivateKey) -> tuple[str, str]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


@pytest.fixture(scope="session")
def providers() -> Iterator[Providers]:
    clock = FakeClock()
    app_private, app_public = _pem(rsa.generate_private_key(65537, 2048))
    doubles = Providers(
        clock=clock,
        wechat=WeChatDouble(WECHAT_APPID, WECHAT_SECRET, clock),
        alipay=AlipayDouble(
            ALIPAY_APP_ID, app_public, clock, alipay_private_key=rsa.generate_private_key(65537, 2048)
        ),
        suishenban=SuishenbanDouble(SSB_CLIENT_ID, SSB_SECRET, SSB_REDIRECT_URI, clock),
        alipay_app_private_pem=app_private,
    )
    for double in (doubles.wechat, doubles.alipay, doubles.suishenban):
        double.slow_seconds = PROVIDER_TIMEOUT * 3
        double.start()
    yield doubles
    for double in (doubles.wechat, doubles.alipay, doubles.suishenban):
        double.stop()


@pytest.fixture
def signin_app(app: Flask, providers: Providers, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """The test app with its provider clients pointed at the doubles, for this test only.

    The session app itself (not a second app): `db_session` swaps that app's engine for the
    test's connection, so a second app would commit for real.
    """
    for name, value in providers.config().items():
        monkeypatch.setitem(app.config, name, value)
    monkeypatch.setitem(app.extensions, "identity_providers", {})  # clients are built from config once
    providers.reset()
    return app


@pytest.fixture
def signin(signin_app: Flask) -> FlaskClient:
    return signin_app.test_client()


@pytest.fixture
def user() -> str:
    """A provider-side user name no other test uses."""
    return "u-" + uuid.uuid4().hex[:12]
