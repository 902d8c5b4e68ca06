"""The crediting hook: which campaign an event gets, how much, budgets consumed once, never overspent."""
from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text

from app.extensions import db
from app.ledger.service import Earning, post_earnings, transfer_explanation
from rewards.campaigns.models import Campaign, CampaignAward
from rewards.campaigns.service import CampaignInput, apply_campaigns
from tests.conftest import make_citizen
from tests.ledger.conftest import run_in_threads

# 全国低碳日 (15 June) in Asia/Shanghai: 16:00 UTC on the 14th to 16:00 UTC on the 15th.
DAY_START = datetime(2026, 6, 14, 16, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)
NOON = DAY_START + timedelta(hours=12)
_codes = itertools.count(1)
_events = itertools.count(1)


def make_campaign(**terms: Any) -> Campaign:
    values: dict[str, Any] = {
        "code": f"campaign-{next(_codes)}",
        "title": {"zh": "全国低碳日", "en": "National Low-Carbon Day"},
        "starts_at": DAY_START,
        "ends_at": DAY_END,
        "scenario_codes": None,
        "districts": None,
        "multiplier": Decimal(2),
        "bonus_points": 0,
        "budget_points": 1_000_000,
        "used_points": 0,
        "status": "live",
        "created_by": "staff:1",
    }
    values.update(terms)
    campaign = Campaign(**values)
    db.session.add(campaign)
    db.session.flush()
    return campaign


def credit(base: int = 10, *, at: datetime = NOON, scenario: str = "metro_trip", district: str | None = "xuhui",
           event_id: int | None = None) -> CampaignInput:
    return CampaignInput(event_id=event_id or next(_events), scenario_code=scenario, occurred_at=at,
                         district=district, base_points=base)


def extras(outcomes: dict[int, Any]) -> dict[int, tuple[str, int]]:
    return {event_id: (o.campaign_code, o.extra_points) for event_id, o in outcomes.items()}


def used(campaign: Campaign) -> int:
    return db.session.scalar(select(Campaign.used_points).where(Campaign.id == campaign.id))


# ---- the selection rule ------------------------------------------------------------------------

def test_no_campaign_no_extra(db_session):
    assert apply_campaigns([credit(), credit()]) == {}
    assert apply_campaigns([]) == {}


def test_a_multiplier_gives_floor_of_base_times_m_minus_one_and_a_bonus_adds_to_it(db_session):
    double = make_campaign(multiplier=Decimal(2), scenario_codes=["metro_trip"])
    one_and_half = make_campaign(multiplier=Decimal("1.5"), bonus_points=2, scenario_codes=["bus_trip"])
    events = [credit(7), credit(7, scenario="bus_trip"), credit(3, scenario="bus_trip")]

    outcomes = apply_campaigns(events)

    assert extras(outcomes) == {
        events[0].event_id: (double.code, 7),
        events[1].event_id: (one_and_half.code, 3 + 2),  # floor(7 × 0.5) + 2
        events[2].event_id: (one_and_half.code, 1 + 2),  # floor(3 × 0.5) + 2
    }
    assert outcomes[events[1].event_id].details() == {
        "code": one_and_half.code,
        "title": {"zh": "全国低碳日", "en": "National Low-Carbon Day"},
        "multiplier": "1.5",
        "bonus_points": 2,
        "extra_points": 5,
        "partial": False,
    }
    assert (used(double), used(one_and_half)) == (7, 8)


def test_scenarios_districts_and_the_window_decide_who_gets_it(db_session):
    campaign = make_campaign(scenario_codes=["metro_trip", "bus_trip"], districts=["xuhui", "huangpu"])
    inside = [
        credit(at=DAY_START),  # starts_at is inclusive
        credit(at=DAY_END - timedelta(microseconds=1), scenario="bus_trip", district="huangpu"),
    ]
    outside = [
        credit(at=DAY_END),  # ends_at is exclusive
        credit(at=DAY_START - timedelta(seconds=1)),
        credit(scenario="recycling_dropoff"),
        credit(district="pudong"),
        credit(district=None),  # an event without a district meets only campaigns for every district
        credit(0),  # nothing credited, nothing multiplied
    ]

    outcomes = apply_campaigns(inside + outside)

    assert extras(outcomes) == {e.event_id: (campaign.code, 10) for e in inside}


def test_a_campaign_for_every_district_reaches_events_without_one(db_session):
    campaign = make_campaign(districts=None, scenario_codes=None)
    event = credit(district=None, scenario="paperless")
    assert extras(apply_campaigns([event])) == {event.event_id: (campaign.code, 10)}


def test_only_live_campaigns_give(db_session):
    for status in ("draft", "paused", "ended"):
        make_campaign(status=status, multiplier=Decimal(5))
    assert apply_campaigns([credit()]) == {}


def test_campaigns_do_not_stack_the_one_giving_most_wins(db_session):
    double = make_campaign(multiplier=Decimal(2))
    bonus = make_campaign(multiplier=Decimal(1), bonus_points=50)
    small, large = credit(10), credit(100)

    outcomes = apply_campaigns([small, large])

    assert extras(outcomes) == {small.event_id: (bonus.code, 50), large.event_id: (double.code, 100)}
    assert (used(double), used(bonus)) == (100, 50)


def test_a_tie_goes_to_the_older_campaign(db_session):
    first = make_campaign(multiplier=Decimal(2))
    make_campaign(multiplier=Decimal(1), bonus_points=10)
    event = credit(10)
    assert extras(apply_campaigns([event])) == {event.event_id: (first.code, 10)}


def test_an_extra_of_zero_is_no_award(db_session):
    make_campaign(multiplier=Decimal("1.1"))
    assert apply_campaigns([credit(5)]) == {}  # floor(5 × 0.1) = 0
    assert db.session.scalar(select(func.count()).select_from(CampaignAward)) == 0


# ---- budgets -----------------------------------------------------------------------------------

def test_the_budget_runs_out_mid_batch_in_occurred_at_order_partial_last(db_session):
    campaign = make_campaign(budget_points=25)
    events = [credit(10, at=NOON + timedelta(minutes=minute)) for minute in range(5)]
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)

    outcomes = apply_campaigns(shuffled)

    assert extras(outcomes) == {
        events[0].event_id: (campaign.code, 10),
        events[1].event_id: (campaign.code, 10),
        events[2].event_id: (campaign.code, 5),
    }
    assert [outcomes[e.event_id].partial for e in events[:3]] == [False, False, True]
    assert used(campaign) == 25
    assert apply_campaigns([credit(10)]) == {}  # exhausted: the next batch gets nothing


def test_events_after_the_budget_ran_out_do_not_fall_back_to_another_campaign(db_session):
    best = make_campaign(multiplier=Decimal(3), budget_points=20)
    make_campaign(multiplier=Decimal(2))
    early, late = credit(10, at=NOON), credit(10, at=NOON + timedelta(minutes=1))

    assert extras(apply_campaigns([late, early])) == {early.event_id: (best.code, 20)}


def test_an_exhausted_campaign_leaves_the_field_to_the_next_best(db_session):
    make_campaign(multiplier=Decimal(3), budget_points=20, used_points=20)
    second = make_campaign(multiplier=Decimal(2))
    event = credit(10)
    assert extras(apply_campaigns([event])) == {event.event_id: (second.code, 10)}


# ---- reruns ------------------------------------------------------------------------------------

def test_a_rerun_returns_the_same_outcomes_and_consumes_nothing_again(db_session):
    campaign = make_campaign(budget_points=25)
    events = [credit(10, at=NOON + timedelta(minutes=minute)) for minute in range(4)]

    first = apply_campaigns(events)
    second = apply_campaigns(events)

    assert second == first
    assert used(campaign) == 25
    assert db.session.scalar(select(func.sum(CampaignAward.points))) == 25


def test_a_rerun_keeps_the_award_after_the_campaign_paused_or_ended(db_session):
    campaign = make_campaign()
    events = [credit(10), credit(20)]
    first = apply_campaigns(events)
    for status in ("paused", "ended"):
        campaign.status = status
        db.session.flush()
        assert apply_campaigns(events) == first
        assert apply_campaigns([credit(10)]) == {}  # a new event gets nothing from a paused campaign
    assert used(campaign) == 30


def test_a_rerun_with_more_events_gives_only_the_new_ones(db_session):
    campaign = make_campaign(budget_points=100)
    old = credit(10, at=NOON)
    apply_campaigns([old])
    new = credit(10, at=NOON - timedelta(hours=1))  # earlier, but the old award stands

    outcomes = apply_campaigns([old, new])

    assert extras(outcomes) == {old.event_id: (campaign.code, 10), new.event_id: (campaign.code, 10)}
    assert used(campaign) == 20


# ---- what the ledger entry shows (how crediting will use the outcome) ---------------------------

def test_the_earning_names_the_campaign(db_session):
    citizen = make_citizen()
    campaign = make_campaign(title={"zh": "世界环境日", "en": "World Environment Day"})
    event = credit(12)
    outcome = apply_campaigns([event])[event.event_id]

    transfers = post_earnings([
        Earning(
            idempotency_key=f"earn:event:{event.event_id}",
            citizen_id=citizen,
            scenario_code=event.scenario_code,
            amount=event.base_points + outcome.extra_points,
            event_id=None,
            details={"base_points": event.base_points, "campaign": outcome.details()},
        )
    ])

    explanation = transfer_explanation(transfers[f"earn:event:{event.event_id}"])
    assert explanation is not None
    assert explanation["campaign"]["code"] == campaign.code
    assert explanation["campaign"]["title"]["zh"] == "世界环境日"
    assert explanation["campaign"]["extra_points"] == 12
    json.dumps(outcome.details())  # JSON as it is


# ---- concurrency -------------------------------------------------------------------------------

def test_concurrent_batches_never_overspend_and_never_award_an_event_twice(app, committed):
    """Twelve batches on their own connections, over two campaigns with small budgets; a third of
    the events are in two batches at once (a crediting job rerun while the first still runs)."""
    metro = make_campaign(scenario_codes=["metro_trip"], budget_points=1_000)
    bus = make_campaign(scenario_codes=["bus_trip"], multiplier=Decimal(3), budget_points=777)
    db.session.commit()
    rng = random.Random(20261127)
    batches = []
    for job in range(12):
        batch = []
        for i in range(60):
            event_id = rng.randrange(100_000, 100_200) if rng.random() < 0.33 else 1_000 * (job + 1) + i
            batch.append(CampaignInput(
                event_id=event_id,
                scenario_code=("metro_trip", "bus_trip")[event_id % 2],
                occurred_at=NOON + timedelta(seconds=event_id % 3_600),
                district="xuhui",
                base_points=5 + event_id % 20,
            ))
        batches.append({c.event_id: c for c in batch}.values())

    results = run_in_threads(app, 12, lambda job: apply_campaigns(list(batches[job])))

    assert [r for r in results if isinstance(r, Exception)] == []
    db.session.rollback()
    awards = dict(db.session.execute(
        text("SELECT campaign_id, sum(points) FROM campaign_awards GROUP BY campaign_id")
    ).tuples().all())
    used_now = dict(db.session.execute(select(Campaign.id, Campaign.used_points)).tuples().all())
    assert used_now == {metro.id: 1_000, bus.id: 777}  # wanted far more: every budget used, none beyond
    assert awards == used_now
    # What each job was told matches what was recorded: an event shared by two jobs got one award.
    recorded = dict(db.session.execute(select(CampaignAward.event_id, CampaignAward.points)).tuples().all())
    told: dict[int, int] = {}
    for outcomes in results:
        for event_id, outcome in outcomes.items():
            assert told.setdefault(event_id, outcome.extra_points) == outcome.extra_points
    assert told == recorded
