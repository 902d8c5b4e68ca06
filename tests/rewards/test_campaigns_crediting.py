"""Campaigns in the crediting job: ×2 on the day, the ledger entry names the campaign, the budget holds.

Runs once app/behaviours/crediting.py calls rewards.campaigns.service.apply_campaigns (the wiring
the campaigns helper handed to the lead); skipped before that.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.behaviours import crediting
from app.behaviours.crediting import credit_batch
from app.extensions import db
from app.ledger.service import check_invariants, transfer_explanation
from rewards.campaigns.models import Campaign, CampaignAward
from tests.behaviours.conftest import Ev, balance, bind, make_batch, make_partner, outcomes
from tests.conftest import make_citizen

pytestmark = pytest.mark.skipif(
    not hasattr(crediting, "_apply_campaigns"), reason="apply_campaigns is not wired into crediting yet"
)

# 全国低碳日 as an Asia/Shanghai day.
DAY_START = datetime(2026, 6, 14, 16, tzinfo=UTC)


@pytest.fixture
def world(db_session, starter_scenarios):
    partner = make_partner("metro")
    citizen = make_citizen(trajectory_scenarios=("metro_trip",))
    return {"partner": partner, "citizen": citizen, "ref": bind(partner, citizen)}


def campaign(**terms) -> Campaign:
    values = {
        "code": "low-carbon-day-2026", "title": {"zh": "全国低碳日 双倍积分", "en": "Low-Carbon Day ×2"},
        "starts_at": DAY_START, "ends_at": DAY_START + timedelta(days=1), "scenario_codes": ["metro_trip"],
        "districts": None, "multiplier": Decimal(2), "bonus_points": 0, "budget_points": 1_000_000,
        "used_points": 0, "status": "live", "created_by": "staff:1",
    }
    values.update(terms)
    row = Campaign(**values)
    db.session.add(row)
    db.session.flush()
    return row


def trip(world, when: datetime) -> Ev:
    return Ev(world["ref"], "metro_trip", when.isoformat(), {"distance_km": "10.57"}, district="xuhui")


def test_double_points_on_the_day_and_the_ledger_entry_names_the_campaign(world) -> None:
    day = campaign()
    batch = make_batch(world["partner"], [trip(world, DAY_START + timedelta(hours=2)),
                                          trip(world, DAY_START - timedelta(hours=2))])
    credit_batch(batch)

    by_time = sorted(outcomes(batch), key=lambda e: e.occurred_at)
    before, on_day = by_time[0], by_time[1]
    assert (before.points, on_day.points) == (828, 828 * 2)
    explanation = transfer_explanation(on_day.transfer_id)
    assert explanation["campaign"]["code"] == day.code
    assert (explanation["base_points"], explanation["campaign"]["extra_points"]) == (828, 828)
    assert "campaign" not in transfer_explanation(before.transfer_id)
    assert balance(world["citizen"]) == 828 * 3
    assert db.session.get(Campaign, day.id).used_points == 828
    assert check_invariants() == []


def test_a_rerun_of_the_batch_consumes_the_budget_once(world) -> None:
    day = campaign(budget_points=1_000)
    batch = make_batch(world["partner"], [trip(world, DAY_START + timedelta(hours=h)) for h in (1, 3)])
    credit_batch(batch)
    credit_batch(batch)

    points = sorted(e.points for e in outcomes(batch))
    assert points == [828 + 172, 828 + 828]  # the second trip got what was left of the budget
    assert db.session.get(Campaign, day.id).used_points == 1_000
    assert db.session.scalar(select(func.sum(CampaignAward.points))) == 1_000
    assert balance(world["citizen"]) == 828 * 2 + 1_000
    assert check_invariants() == []
