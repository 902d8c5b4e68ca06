"""Refuse to start a production process with development settings."""
from __future__ import annotations

from typing import Any

from app.config import Config


def check_production_config(config: dict[str, Any]) -> None:
    from app.auth.providers import check_provider_url

    for name in ("SECRET_KEY", "DATA_ENC_KEY", "DATA_IDX_KEY"):
        if config.get(name) == getattr(Config, name) or not config.get(name):
            raise RuntimeError(f"{name} must be set from the environment in production")
    for name in ("WECHAT_BASE_URL", "ALIPAY_BASE_URL", "SUISHENBAN_BASE_URL"):
        check_provider_url(config[name], production=True)
