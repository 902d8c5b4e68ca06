"""`flask demo load`: partners, a demo citizen and a week of credited history, for `make run`.

Everything goes through the real services (partner registry, binding codes, batch ingest,
crediting), so what the demo shows is what the product does. The partners' secrets are
written to instance/dev/demo-partners.json (mode 0600) so the README's partner example
can be run against a local server; a production database never gets demo data.
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from app.accounts import service as accounts
from app.accounts.models import Citizen
from app.accounts.terms import TERMS_VERSION
from app.auth.providers import ProviderIdentity
from app.auth.service import attach_identity, citizen_for_identity, find_identity
from app.behaviours.crediting import credit_batch, credit_events
from app.behaviours.declare import declare_behaviour
from app.behaviours.ingest import ingest_batch
from app.behaviours.models import InboundEvent
from app.extensions import db
from app.ledger.service import account_balances
from app.models_base import utcnow
from app.partners import service as partners

demo_cli = AppGroup("demo", help="Demo data for local runs.")

DEMO_PARTNERS = (
    ("shmetro", "metro", "上海地铁", "Shanghai Metro", "SHM-DEMO-0001"),
    ("shbus", "bus", "上海公交", "Shanghai Bus", "SHB-DEMO-0001"),
    ("hellobike", "bikeshare", "哈啰单车", "Hello Bike", "HB-DEMO-0001"),
    ("shrecycle", "recycling", "上海两网融合回收站", "Shanghai Recycling Stations", "RC-DEMO-0001"),
    ("sheinvoice", "einvoice", "上海电子发票服务平台", "Shanghai e-Invoice Service", "EI-DEMO-0001"),
)
TRAJECTORY_SCENARIOS = ("metro_trip", "bus_trip", "bikeshare_ride")
DEMO_USER = "demo"  # the provider doubles' demo user: sign in with a code minted for "demo"


@demo_cli.command("load")
def load() -> None:
    """Load the demo data once (a second run changes nothing)."""
    if current_app.config["PRODUCTION"]:
        raise click.ClickException("demo data is never loaded into a production database")
    _load_honours()
    if partners.partner_by_code(DEMO_PARTNERS[0][0]) is not None:
        click.echo("demo data already loaded")
        return
    secrets = _create_partners()
    citizen_id = _create_demo_citizen()
    _create_demo_merchant()
    _create_demo_campaigns()
    db.session.commit()
    path = _write_secrets(secrets)
    click.echo(f"demo partners created; their key ids and secrets: {path}")
    outcomes = _push_history(citizen_id)
    summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
    click.echo(f"demo citizen {citizen_id}: a week of behaviours pushed and credited ({summary})")
    _award_demo_honours(citizen_id)
    balances = account_balances(citizen_id)
    click.echo(f"demo citizen balance: {balances.available} points available")
    click.echo('sign in as the demo citizen: mint a WeChat code with '
               'curl -X POST http://127.0.0.1:5101/__double__/codes -d \'{"user": "demo"}\' '
               'and POST it to /api/v1/auth/wechat')


def _load_honours() -> None:
    """Badge and level definitions (the same rows `flask honours load` writes)."""
    from rewards.honours.service import load_definitions

    load_definitions()
    db.session.commit()


def _award_demo_honours(citizen_id: int) -> None:
    """What the rq job does after each batch (the demo credits in-process), plus a nickname on the board."""
    from rewards.honours.service import evaluate_citizens, set_leaderboard

    result = evaluate_citizens([citizen_id], reason={"demo": True})
    set_leaderboard(citizen_id, opt_in=True, nickname="演示市民", nickname_given=True)
    db.session.commit()
    click.echo(f"demo citizen honours: {result['awarded']} badge(s) awarded, on the xuhui leaderboard")


def _create_demo_campaigns() -> None:
    """Double points on the next 世界环境日 (5 June) and 全国低碳日 (15 June here), Asia/Shanghai days, live."""
    from datetime import date, time, timezone
    from decimal import Decimal

    from rewards.campaigns.service import create_campaign

    shanghai = timezone(timedelta(hours=8))
    today = utcnow().astimezone(shanghai).date()
    for code, month_day, zh, en in (
        ("world-environment-day", (6, 5), "世界环境日 双倍积分", "World Environment Day: double points"),
        ("low-carbon-day", (6, 15), "全国低碳日 双倍积分", "National Low-Carbon Day: double points"),
    ):
        day = date(today.year, *month_day)
        day = day if day >= today else date(today.year + 1, *month_day)
        starts_at = datetime.combine(day, time(), shanghai)
        create_campaign("system:demo", {
            "code": f"{code}-{day.year}", "title": {"zh": zh, "en": en}, "starts_at": starts_at,
            "ends_at": starts_at + timedelta(days=1), "multiplier": Decimal(2), "budget_points": 1_000_000,
            "status": "live",
        })


def _create_demo_merchant() -> None:
    """绿色咖啡 Green Café with two stores, its admin and a cashier, and console staff accounts."""
    from rewards.merchants.demo import load_demo_merchant

    for line in load_demo_merchant():
        click.echo(line)


def _create_partners() -> dict[str, dict[str, str]]:
    secrets = {}
    for code, kind, name_zh, name_en, _ in DEMO_PARTNERS:
        _, key_id, secret = partners.create_partner(code, kind, name_zh, name_en)
        secrets[code] = {"key_id": key_id, "secret": secret, "kind": kind}
    return secrets


def demo_person(user: str) -> Citizen:
    """The citizen behind a doubles' user: WeChat and Suishenban (H5) sign-ins reach the same account."""
    from doubles.suishenban import sub_for
    from doubles.wechat import openid_for

    config = current_app.config
    citizen = citizen_for_identity(ProviderIdentity("wechat", openid_for(config["WECHAT_APPID"], user)))
    suishenban = ProviderIdentity("suishenban", sub_for(config["SUISHENBAN_CLIENT_ID"], user))
    if find_identity(suishenban) is None:
        attach_identity(citizen.id, suishenban)
    accounts.grant_privacy_consent(citizen.id, TERMS_VERSION)
    return citizen


def _create_demo_citizen() -> int:
    citizen = demo_person(DEMO_USER)
    for scenario_code in TRAJECTORY_SCENARIOS:
        accounts.grant_trajectory_consent(citizen.id, scenario_code)
    accounts.set_home_district(citizen.id, "xuhui")
    for code, _, _, _, account_ref in DEMO_PARTNERS:
        binding_code, _ = partners.issue_binding_code(citizen.id, code)
        partner = partners.partner_by_code(code)
        assert partner is not None
        partners.confirm_binding(partner, binding_code, account_ref)
    return citizen.id


def _write_secrets(secrets: dict[str, dict[str, str]]) -> Path:
    path = Path(current_app.config.get("DEMO_SECRETS_PATH") or
                Path(current_app.root_path).parent / "instance" / "dev" / "demo-partners.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(secrets, indent=2, ensure_ascii=False))
    return path


def _push_history(citizen_id: int) -> dict[str, int]:
    """A week of trips, rides, drop-offs and invoices, pushed and credited like a partner's."""
    rng = random.Random(20261126)
    now = utcnow()
    for code, _kind, _, _, account_ref in DEMO_PARTNERS:
        partner = partners.partner_by_code(code)
        assert partner is not None
        events = [
            _event(code, account_ref, index, now - timedelta(days=day, hours=rng.randint(1, 10)), rng)
            for index, day in enumerate(d for d in range(0, 7) for _ in range(2))
        ]
        result = ingest_batch(partner, events)
        db.session.commit()
        credit_batch(result["batch_id"])
        db.session.commit()
    declared = declare_behaviour(
        citizen_id, "paperless", {"item_type": "e_invoice", "document_number": "26312000000000012345"}
    )
    db.session.commit()
    credit_events([declared.id])
    db.session.commit()
    rows = db.session.execute(
        select(InboundEvent.status, func.count())
        .where(InboundEvent.citizen_id == citizen_id)
        .group_by(InboundEvent.status)
    ).all()
    return {status: count for status, count in rows}


def _event(partner_code: str, account_ref: str, index: int, at: datetime, rng: random.Random) -> dict[str, Any]:
    activity: dict[str, Any]
    scenario = {
        "shmetro": "metro_trip", "shbus": "bus_trip", "hellobike": "bikeshare_ride",
        "shrecycle": "recycling_dropoff", "sheinvoice": "paperless",
    }[partner_code]
    if scenario == "metro_trip":
        activity = {"distance_km": str(round(rng.uniform(3, 25), 2))}
    elif scenario == "bus_trip":
        activity = {"trips": 1}
    elif scenario == "bikeshare_ride":
        activity = {"distance_km": str(round(rng.uniform(0.8, 4), 2)), "duration_min": rng.randint(6, 20)}
    elif scenario == "recycling_dropoff":
        activity = {"weight_kg": str(round(rng.uniform(0.5, 4), 2)),
                    "material": rng.choice(["paper", "plastic", "metal", "glass", "textile"])}
    else:
        activity = {"item_type": "e_ticket", "document_number": f"ET{at:%Y%m%d}{index:04d}"}
    return {
        "event_id": f"demo-{partner_code}-{index}",
        "account_ref": account_ref,
        "scenario": scenario,
        "occurred_at": at.isoformat(),
        "district": "xuhui",
        "activity": activity,
        "claimed_elsewhere": False,
    }
