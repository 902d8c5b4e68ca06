"""`flask partners create | rotate-secret | suspend | activate`: secrets printed once, stored encrypted."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.partners.cli import partners_cli
from app.partners.models import Partner, PartnerSecret
from tests.partner_client import json_body, signed_headers
from tests.partners.helpers import BATCH

BODY = json_body({"events": [{"event_id": "cli-1"}]})


@pytest.fixture
def runner(app, db_session):
    return app.test_cli_runner()


def invoke(runner, *args: str):
    return runner.invoke(partners_cli, list(args), catch_exceptions=False)


def printed_credentials(output: str) -> tuple[str, str]:
    key_id = re.search(r"key id: (\S+)", output).group(1)
    secret = re.search(r"secret: (\S+)", output).group(1)
    return key_id, secret


def test_create_prints_a_working_key_id_and_secret_once(runner, client) -> None:
    result = invoke(runner, "create", "--code", "shmetro", "--kind", "metro", "--name-zh", "上海地铁",
                    "--name-en", "Shanghai Metro")

    assert result.exit_code == 0, result.output
    key_id, secret = printed_credentials(result.output)
    partner = db.session.scalars(select(Partner).where(Partner.code == "shmetro")).one()
    assert (partner.kind, partner.name_zh, partner.status) == ("metro", "上海地铁", "active")
    stored = db.session.scalars(select(PartnerSecret).where(PartnerSecret.key_id == key_id)).one()
    assert secret.encode() not in stored.secret_enc
    assert client.post(BATCH, data=BODY, headers=signed_headers(key_id, secret, BODY)).status_code == 202


def test_create_refuses_a_duplicate_code_and_bad_input(runner) -> None:
    args = ["create", "--code", "shbus", "--kind", "bus", "--name-zh", "巴士", "--name-en", "Bus"]
    assert invoke(runner, *args).exit_code == 0

    duplicate = invoke(runner, *args)
    assert duplicate.exit_code != 0 and "exists" in duplicate.output
    assert invoke(runner, "create", "--code", "Bad Code", "--kind", "bus", "--name-zh", "x",
                  "--name-en", "x").exit_code != 0
    assert invoke(runner, "create", "--code", "taxi", "--kind", "taxi", "--name-zh", "x",
                  "--name-en", "x").exit_code != 0


def test_rotate_secret_issues_a_new_secret_and_the_old_one_overlaps(runner, client) -> None:
    old_key, old_secret = printed_credentials(
        invoke(runner, "create", "--code", "hellobike", "--kind", "bikeshare", "--name-zh", "哈啰",
               "--name-en", "Hello").output
    )

    result = invoke(runner, "rotate-secret", "hellobike")

    assert result.exit_code == 0, result.output
    new_key, new_secret = printed_credentials(result.output)
    assert new_key != old_key
    for key_id, secret in ((old_key, old_secret), (new_key, new_secret)):
        assert client.post(BATCH, data=BODY, headers=signed_headers(key_id, secret, BODY)).status_code == 202
    old = db.session.scalars(select(PartnerSecret).where(PartnerSecret.key_id == old_key)).one()
    assert old.expires_at is not None


def test_rotating_with_no_overlap_retires_the_old_secret_at_once(runner, client) -> None:
    old_key, old_secret = printed_credentials(
        invoke(runner, "create", "--code", "einv", "--kind", "einvoice", "--name-zh", "发票",
               "--name-en", "Invoices").output
    )
    invoke(runner, "rotate-secret", "einv", "--overlap-hours", "0")

    response = client.post(BATCH, data=BODY, headers=signed_headers(old_key, old_secret, BODY))
    assert response.status_code == 401


def test_suspend_and_activate(runner, client) -> None:
    key_id, secret = printed_credentials(
        invoke(runner, "create", "--code", "recyc", "--kind", "recycling", "--name-zh", "回收",
               "--name-en", "Recycling").output
    )
    assert invoke(runner, "suspend", "recyc").exit_code == 0
    assert client.post(BATCH, data=BODY, headers=signed_headers(key_id, secret, BODY)).status_code == 403

    assert invoke(runner, "activate", "recyc").exit_code == 0
    assert client.post(BATCH, data=BODY, headers=signed_headers(key_id, secret, BODY)).status_code == 202


def test_unknown_partner_codes_fail_cleanly(runner) -> None:
    assert invoke(runner, "rotate-secret", "nobody").exit_code != 0
    assert invoke(runner, "suspend", "nobody").exit_code != 0
