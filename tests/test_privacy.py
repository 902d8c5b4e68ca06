"""Personal information end to end (SECURITY §Personal information, PIPL).

One citizen's whole journey through the real HTTP path and the real crediting job, with every
logger captured at DEBUG (SQLAlchemy's statements and parameters included): a Suishenban sign-in
that returns a verified phone, consents, a WeChat identity linked and signed in with, a partner
binding, a partner batch naming the bound reference, crediting, a self-declared e-invoice, a
refresh and a logout. Then:

- no column of any table holds the phone, the WeChat openid or the partner's account reference
  in plaintext (text and jsonb as text; bytea both as its bytes and as hex);
- the captured logs hold none of the personal data, credentials or codes that went by;
- the audit chain verifies and records the privileged actions.
"""
from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from app.extensions import db
from tests.auth.conftest import Providers, providers, signin_app  # noqa: F401  (fixtures)
from tests.conftest import truncate_all
from tests.partner_client import signed_request

# A mainland mobile number standing on its own: not a digit run inside a hex digest, base64 or an id,
# where random bytes spell 11 digits by chance (seen once in a debug log of SQL parameters).
MOBILE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")
PHONE_E164 = "+8613912345678"
PHONE_NATIONAL = PHONE_E164[3:]
ACCOUNT_REF = "SHMETRO-CARD-00098765"
INVOICE_NUMBER = "25312000000098765432"


class LogCapture(logging.Handler):
    """Every record of every logger, formatted with its traceback, at DEBUG."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def debug_logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if logger is logging.getLogger() or not logger.propagate:
            logger.addHandler(capture)
    # Loggers created later (first use) inherit DEBUG from the root and propagate to it.
    try:
        yield capture
    finally:
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled
            logger.removeHandler(capture)


@pytest.fixture
def world(app: Flask, signin_app: Flask) -> Iterator[dict[str, Any]]:  # noqa: F811
    """Scenarios and a metro partner, committed; requests then run in their own app contexts."""
    from app.partners.service import create_partner
    from scenarios.service import load_directory

    with app.app_context():
        load_directory()
        _, key_id, secret = create_partner("privacy-metro", "metro", "测试地铁", "Test Metro")
        db.session.commit()
        db.session.remove()
    try:
        yield {"partner_code": "privacy-metro", "key_id": key_id, "secret": secret}
    finally:
        with app.app_context():
            db.session.remove()
            truncate_all()


def test_personal_data_never_stored_or_logged_in_plaintext(
    app: Flask, world: dict[str, Any], providers: Providers, debug_logs: LogCapture  # noqa: F811
) -> None:
    client = app.test_client()
    seen: dict[str, str] = {}  # every secret value that went by, to look for afterwards

    # Suishenban sign-in with a verified phone: a new citizen.
    user = "privacy-" + secrets.token_hex(4)
    code = providers.mint("suishenban", user, phone=PHONE_E164)
    signed_in = _ok(client.post("/api/v1/auth/suishenban", json={"code": code}), 200)
    seen |= {"suishenban code": code, "access token 1": signed_in["access_token"],
             "refresh token 1": signed_in["refresh_token"]}
    bearer = {"Authorization": f"Bearer {signed_in['access_token']}"}

    # Consents: the privacy terms, then trips for the metro.
    version = _ok(client.get("/api/v1/privacy-terms"), 200)["version"]
    _ok(client.post("/api/v1/me/consents", json={"kind": "privacy", "terms_version": version}, headers=bearer), 201)
    _ok(client.post("/api/v1/me/consents", json={"kind": "trajectory", "scenario_code": "metro_trip"},
                    headers=bearer), 201)

    # WeChat: linked to this account, then used to sign in.
    code = providers.mint("wechat", user)
    _ok(client.post("/api/v1/me/identities/wechat", json={"code": code}, headers=bearer), 201)
    seen["wechat code 1"] = code
    code = providers.mint("wechat", user)
    wechat = _ok(client.post("/api/v1/auth/wechat", json={"code": code}), 200)
    assert wechat["citizen"]["id"] == signed_in["citizen"]["id"]
    seen |= {"wechat code 2": code, "access token 2": wechat["access_token"],
             "refresh token 2": wechat["refresh_token"]}

    # The owner sees the phone masked, and only the owner.
    me = _ok(client.get("/api/v1/me", headers=bearer), 200)
    assert me["phone"] == "139****5678"

    # Partner binding, a batch naming the bound reference, crediting.
    binding_code = _ok(client.post("/api/v1/me/bindings/codes", json={"partner_code": world["partner_code"]},
                                   headers=bearer), 201)["code"]
    seen["binding code"] = binding_code
    _ok(_partner(client, world, "POST", "/api/v1/partner/bindings",
                 {"binding_code": binding_code, "account_ref": ACCOUNT_REF}), 201)
    event = {"event_id": "privacy-trip-1", "account_ref": ACCOUNT_REF, "scenario": "metro_trip",
             "occurred_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(), "district": "pudong",
             "activity": {"distance_km": "12.4"}, "claimed_elsewhere": False}
    receipt = _ok(_partner(client, world, "POST", "/api/v1/partner/events:batch", {"events": [event]}), 202)
    assert receipt["accepted"] == 1, receipt
    from app import jobs

    with app.app_context():
        outcome = jobs.credit_batch(receipt["batch_id"])
    assert outcome.get("credited") == 1, outcome

    # A self-declared e-invoice, credited by its job.
    declared = _ok(client.post("/api/v1/me/behaviours", headers={**bearer, "Idempotency-Key": "privacy-invoice-1"},
                               json={"scenario": "paperless", "activity": {"item_type": "e_invoice",
                                                                           "document_number": INVOICE_NUMBER}}), 201)
    with app.app_context():
        jobs.credit_events([declared["id"]])
    account = _ok(client.get("/api/v1/me/account", headers=bearer), 200)
    assert account["points"]["available"] > 0

    # Refresh, then sign this device out.
    refreshed = _ok(client.post("/api/v1/auth/refresh", json={"refresh_token": signed_in["refresh_token"]}), 200)
    seen |= {"access token 3": refreshed["access_token"], "refresh token 3": refreshed["refresh_token"]}
    assert client.post("/api/v1/auth/logout", json={"refresh_token": refreshed["refresh_token"]}).status_code == 204

    openid = providers.wechat.openid(user)
    personal = {"phone (E.164)": PHONE_E164, "phone": PHONE_NATIONAL, "WeChat openid": openid,
                "partner account reference": ACCOUNT_REF}
    seen |= personal
    seen |= {f"session_key {n}": key for n, key in enumerate(providers.wechat.session_keys_issued)}
    seen |= {"partner secret": world["secret"], "WeChat app secret": app.config["WECHAT_SECRET"],
             "Suishenban client secret": app.config["SUISHENBAN_CLIENT_SECRET"]}
    assert providers.wechat.session_keys_issued, "the WeChat double issued session keys"

    # (a) No table holds personal data in plaintext.
    with app.app_context():
        hits = _plaintext_in_database(list(personal.values()))
    assert hits == []

    # (b) The logs hold none of it, nor any credential or code.
    assert any(line.startswith("DEBUG sqlalchemy.engine") for line in debug_logs.lines), "capture works"
    leaked = sorted(name for name, value in seen.items() if value in debug_logs.text)
    assert leaked == []
    assert MOBILE.findall(debug_logs.text) == []

    # (c) The audit chain is intact and recorded the privileged actions.
    from app.audit.models import AuditEntry
    from app.audit.service import verify_chain

    with app.app_context():
        assert verify_chain() is None
        actions = set(db.session.scalars(db.select(AuditEntry.action)))
        db.session.remove()
    assert {"auth.login", "consent.granted", "auth.identity_linked", "partner_binding.bound",
            "auth.logout"} <= actions


def _ok(response: Any, status: int) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _partner(client: FlaskClient, world: dict[str, Any], method: str, path: str, payload: Any) -> Any:
    return signed_request(client, method, path, world["key_id"], world["secret"], payload)


def _plaintext_in_database(values: list[str]) -> list[str]:
    """Every (table.column, what) where a mobile number or one of `values` appears in plaintext.

    Text, numbers, timestamps and jsonb are searched as text. A bytea is searched as its bytes
    (plaintext stored as bytes shows as ASCII) and, for the given values, as hex; the mobile-number
    pattern is not run over hex, where random ciphertext spells digit runs by chance.
    """
    columns = db.session.execute(text(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    )).all()
    assert len({table for table, _, _ in columns}) >= 20, "every table is scanned"
    hits = []
    for table, column, data_type in columns:
        if data_type == "bytea":
            as_text = f"encode(\"{column}\", 'escape')"
            as_hex = f"encode(\"{column}\", 'hex')"
        else:
            as_text, as_hex = f"\"{column}\"::text", None
        for (value,) in db.session.execute(text(f'SELECT {as_text} FROM "{table}" WHERE "{column}" IS NOT NULL')):
            if MOBILE.search(value):
                hits.append(f"{table}.{column}: a mobile number")
            hits += [f"{table}.{column}: {needle!r}" for needle in values if needle in value]
        if as_hex is not None:
            hexes = [needle.encode().hex() for needle in values]
            for (value,) in db.session.execute(text(f'SELECT {as_hex} FROM "{table}" WHERE "{column}" IS NOT NULL')):
                hits += [f"{table}.{column}: {needle!r} (hex)" for needle, h in zip(values, hexes, strict=True)
                         if h in value]
    db.session.remove()
    return hits
