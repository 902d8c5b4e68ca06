"""Settings from environment variables, one class per environment.

Secrets and keys always come from the environment in production; development and
tests get fixed throwaway values so a newcomer needs no setup.
"""
from __future__ import annotations

import os
from typing import Any


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


class Config:
    ENV_NAME = "base"
    TESTING = False
    PRODUCTION = False
    SECRET_KEY = _env("SECRET_KEY", "dev-only-secret-key-change-me")
    # Signs the 60-second coupon QR tokens; unset, a key derived from SECRET_KEY is used.
    COUPON_TOKEN_KEY = _env("COUPON_TOKEN_KEY")
    SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL")
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": 10,
        "max_overflow": 20,
        # PostgreSQL's JIT spent 1.3-3 s compiling the 80-150 ms set-based crediting statements.
        "connect_args": {"options": "-c jit=off"},
    }
    REDIS_URL = _env("REDIS_URL")
    RQ_QUEUE = _env("RQ_QUEUE", "carbon")
    MAX_CONTENT_LENGTH = 4 * 1024 * 1024  # a partner batch: 5,000 events, 4 MiB

    # Personal-data keys (32 bytes, hex). Separate keys for encryption and for the blind index.
    DATA_ENC_KEY = _env("DATA_ENC_KEY", "00" * 31 + "01")
    DATA_IDX_KEY = _env("DATA_IDX_KEY", "00" * 31 + "02")
    DATA_KEY_VERSION = int(_env("DATA_KEY_VERSION", "1") or 1)

    # Tokens
    JWT_ISSUER = _env("JWT_ISSUER", "https://carbon.sh.gov.cn")
    JWT_AUDIENCE = _env("JWT_AUDIENCE", "carbon-api")
    ACCESS_TOKEN_TTL = 15 * 60
    REFRESH_TOKEN_TTL = 30 * 24 * 3600

    # Identity providers (real endpoints by default; doubles only outside production)
    WECHAT_BASE_URL = _env("WECHAT_BASE_URL", "https://api.weixin.qq.com")
    WECHAT_APPID = _env("WECHAT_APPID", "wx-dev-appid")
    WECHAT_SECRET = _env("WECHAT_SECRET", "wx-dev-secret")
    ALIPAY_BASE_URL = _env("ALIPAY_BASE_URL", "https://openapi.alipay.com")
    ALIPAY_APP_ID = _env("ALIPAY_APP_ID", "2021000000000000")
    ALIPAY_PRIVATE_KEY = _env("ALIPAY_PRIVATE_KEY")
    ALIPAY_PUBLIC_KEY = _env("ALIPAY_PUBLIC_KEY")  # Alipay's key, to verify its answers
    SUISHENBAN_BASE_URL = _env("SUISHENBAN_BASE_URL", "https://zwdt.sh.gov.cn")
    SUISHENBAN_CLIENT_ID = _env("SUISHENBAN_CLIENT_ID", "carbon-dev")
    SUISHENBAN_CLIENT_SECRET = _env("SUISHENBAN_CLIENT_SECRET", "carbon-dev-secret")
    # No fragment: RFC 6749 §3.1.2 forbids one; the H5 page reads code/state from location.search.
    SUISHENBAN_REDIRECT_URI = _env("SUISHENBAN_REDIRECT_URI", "http://127.0.0.1:5000/m/")
    PROVIDER_TIMEOUT = float(_env("PROVIDER_TIMEOUT", "5") or 5)

    # Partner API
    PARTNER_SIGNATURE_WINDOW = 300
    PARTNER_NONCE_TTL = 600
    PARTNER_MAX_EVENTS = 5000
    EVENT_MAX_AGE_DAYS = 7
    BINDING_CODE_TTL = 600

    # Rate limits (Flask-Limiter, stored in Redis)
    RATELIMIT_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_AUTH = _env("RATELIMIT_AUTH", "30 per minute")
    RATELIMIT_PARTNER = _env("RATELIMIT_PARTNER", "600 per minute")
    RATELIMIT_EXPORT = _env("RATELIMIT_EXPORT", "5 per hour")  # the data export reads every table
    # The yearly certificate PNG is drawn with Pillow on every request (~CPU-heavy): per citizen.
    RATELIMIT_CERTIFICATE = _env("RATELIMIT_CERTIFICATE", "10 per minute")

    # OpenAPI (flask-smorest); Swagger UI assets are served by the app itself.
    API_TITLE = "碳普惠 Personal Carbon Account API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "/static/swagger-ui/"

    # Equivalents shown to citizens (METHODOLOGIES.md)
    TREE_GRAMS_PER_YEAR = 17_900  # Ant Forest: one saxaul 梭梭 ≈ 17.9 kg CO2
    CAR_GRAMS_PER_KM = 160  # 7 L/100 km × ≈2.3 kg CO2/L petrol

    SWEEPER_AFTER_SECONDS = 60

    # Operators' console (/console): a signed session cookie, HttpOnly, SameSite=Lax, Secure outside
    # development and tests; CSRF tokens (Flask-WTF) are checked on the console's POSTs only, the API
    # uses bearer tokens. A session lasts a working day; a suspended account loses it at once.
    SESSION_COOKIE_NAME = "carbon_console"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True
    PERMANENT_SESSION_LIFETIME = 8 * 3600
    WTF_CSRF_CHECK_DEFAULT = False
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session

    # Points expire at the end of the calendar year this many years after they were earned
    # (Asia/Shanghai): 1 = points earned in 2026 count until 2027-12-31. The expiry job runs hourly
    # (rerunning it changes nothing) and notifies citizens POINTS_EXPIRY_NOTICE_DAYS before.
    POINTS_EXPIRE_AFTER_YEARS = int(_env("POINTS_EXPIRE_AFTER_YEARS", "1") or 1)
    POINTS_EXPIRY_NOTICE_DAYS = 30
    POINTS_EXPIRY_INTERVAL_SECONDS = 3600

    # Number of reverse proxies in front of the app whose X-Forwarded-For is trusted (rate limits
    # key on the client address, so behind a proxy this must be set).
    PROXY_FIX_X_FOR = int(_env("PROXY_FIX_X_FOR", "0") or 0)


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    SESSION_COOKIE_SECURE = False  # plain http on 127.0.0.1
    WECHAT_BASE_URL = _env("WECHAT_BASE_URL", "http://127.0.0.1:5101")
    ALIPAY_BASE_URL = _env("ALIPAY_BASE_URL", "http://127.0.0.1:5102")
    SUISHENBAN_BASE_URL = _env("SUISHENBAN_BASE_URL", "http://127.0.0.1:5103")


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    SESSION_COOKIE_SECURE = False
    SQLALCHEMY_DATABASE_URI = _env("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    REDIS_URL = _env("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    RQ_QUEUE = "carbon-test"
    RATELIMIT_AUTH = "1000 per minute"
    RATELIMIT_PARTNER = "1000 per minute"
    RATELIMIT_CERTIFICATE = "1000 per minute"
    PROVIDER_TIMEOUT = 1.0


class ProductionConfig(Config):
    ENV_NAME = "production"
    PRODUCTION = True


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def normalise_database_url(url: str) -> str:
    """SQLAlchemy needs the psycopg 3 driver named explicitly."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
