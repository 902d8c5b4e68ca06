"""A production process refuses development keys and provider URLs that are not public HTTPS."""
from __future__ import annotations

import pytest

from app import create_app
from tests.conftest import DATABASE_URL, REDIS_URL

GOOD = {
    "SQLALCHEMY_DATABASE_URI": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "SECRET_KEY": "a-production-secret-from-the-environment",
    "DATA_ENC_KEY": "11" * 32,
    "DATA_IDX_KEY": "22" * 32,
    "WECHAT_BASE_URL": "https://api.weixin.qq.com",
    "ALIPAY_BASE_URL": "https://openapi.alipay.com",
    "SUISHENBAN_BASE_URL": "https://zwdt.sh.gov.cn",
}


def test_a_production_configuration_with_real_keys_and_https_providers_starts() -> None:
    app = create_app("production", GOOD)
    assert app.config["PRODUCTION"] is True


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATA_ENC_KEY", "DATA_IDX_KEY"])
def test_development_keys_are_refused_in_production(name: str) -> None:
    from app.config import Config

    with pytest.raises(RuntimeError, match=name):
        create_app("production", {**GOOD, name: getattr(Config, name)})


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("WECHAT_BASE_URL", "http://api.weixin.qq.com"),
        ("WECHAT_BASE_URL", "http://127.0.0.1:5101"),
        ("ALIPAY_BASE_URL", "https://localhost:5102"),
        ("SUISHENBAN_BASE_URL", "https://10.0.0.8"),
        ("SUISHENBAN_BASE_URL", "https://192.168.1.20/oauth2"),
    ],
)
def test_loopback_private_or_plain_http_provider_urls_are_refused_in_production(name: str, url: str) -> None:
    with pytest.raises(ValueError):
        create_app("production", {**GOOD, name: url})


def test_the_development_configuration_may_use_the_loopback_doubles() -> None:
    app = create_app("development", {**GOOD, "WECHAT_BASE_URL": "http://127.0.0.1:5101"})
    assert app.config["WECHAT_BASE_URL"] == "http://127.0.0.1:5101"
