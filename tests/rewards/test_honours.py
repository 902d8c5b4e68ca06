"""Honours as a specification: badges are data, evaluated over credited history, awarded once; streaks
count Asia/Shanghai days; levels follow cumulative CO2e; a grant (荣誉兑换) is once too."""
from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from app.audit.models import AuditEntry
from app.behaviours.models import InboundEvent
from app.errors import AppError
from app.extensions import db
from app.notifications.models import Notification
from rewards.honours.definitions import DefinitionError, read_definitions
from rewards.honours.models import CitizenHonour, HonourBadge, HonourLevel
from rewards.honours.service import (
    citizen_stats,
    evaluate_batch,
    evaluate_citizens,
    evaluate_events,
    grant_honour,
    level_for,
    load_definitions,
)
from tests.conftest import make_citizen

_serial = itertools.count(1)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def credited(
    citizen_id: int,
    occurred_at: str,
    *,
    scenario: str = "metro_trip",
    grams: int = 100,
    points: int = 1,
    status: str = "credited",
    batch_id: uuid.UUID | None = None,
) -> None:
    """An inbound event as crediting leaves it (times are UTC)."""
    db.session.execute(
        insert(InboundEvent),
        [{
            "batch_id": batch_id,
            "partner_id": 1,
            "source": "partner",
            "external_id": f"honours-{next(_serial)}",
            "citizen_id": citizen_id,
            "scenario_code": scenario,
            "occurred_at": at(occurred_at),
            "activity": {},
            "status": status,
            "grams": grams,
            "credited_grams": grams if status == "credited" else 0,
            "points": points if status == "credited" else 0,
        }],
    )


def awarded(citizen_id: int) -> set[str]:
    return set(db.session.scalars(select(CitizenHonour.badge_code).where(CitizenHonour.citizen_id == citizen_id)))


@pytest.fixture
def badges(db_session) -> None:
    load_definitions()


# ---- definitions ---------------------------------------------------------------------------------


def test_the_seed_file_loads_badges_and_levels_and_a_reload_changes_nothing(db_session) -> None:
    report = load_definitions()
    assert "badge first_step: created" in report and "levels: 4 loaded" in report
    levels = db.session.scalars(select(HonourLevel).order_by(HonourLevel.threshold_grams)).all()
    assert [(lv.name_zh, lv.threshold_grams) for lv in levels] == [
        ("绿芽", 0), ("绿叶", 10_000), ("绿树", 100_000), ("森林", 1_000_000)
    ]
    metro = db.session.get(HonourBadge, "metro_10")
    assert (metro.rule_type, metro.params) == ("event_count", {"scenario": "metro_trip", "count": 10})
    assert load_definitions() == ["badges and levels unchanged"]


def test_a_badge_dropped_from_the_file_is_deactivated_and_its_awards_stay(db_session, tmp_path: Path) -> None:
    load_definitions()
    citizen = make_citizen()
    credited(citizen, "2026-03-01T02:00:00")
    evaluate_citizens([citizen], reason={"test": True})
    assert "first_step" in awarded(citizen)
    path = tmp_path / "badges.yaml"
    path.write_text(
        "levels:\n  - {code: sprout, threshold_grams: 0, name: {zh: 绿芽, en: Sprout}, icon: s}\n"
        "badges:\n  - code: metro_10\n    rule: {type: event_count, scenario: metro_trip, count: 10}\n"
        "    name: {zh: 地铁常客, en: Metro regular}\n    description: {zh: 十次, en: ten}\n    icon: m\n",
        encoding="utf-8",
    )
    report = load_definitions(path)
    assert "badge first_step: deactivated (no longer in the file; awards kept)" in report
    assert db.session.get(HonourBadge, "first_step").active is False
    assert "first_step" in awarded(citizen)


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ("{type: run_python, code: 'import os'}", "unknown rule type"),
        ("{type: event_count, scenario: metro_trip}", "count"),
        ("{type: event_count, count: '10'}", "count"),
        ("{type: streak_days, days: 1}", "days"),
        ("{type: total_grams, grams: 5, extra: 1}", "extra"),
        ("{type: first_event, scenario: 'Metro Trip!'}", "scenario"),
    ],
)
def test_rules_are_a_closed_set_with_checked_parameters(tmp_path: Path, rule: str, complaint: str) -> None:
    path = tmp_path / "badges.yaml"
    path.write_text(
        "levels:\n  - {code: sprout, threshold_grams: 0, name: {zh: 绿芽, en: Sprout}, icon: s}\n"
        f"badges:\n  - code: b\n    rule: {rule}\n    name: {{zh: 徽, en: B}}\n"
        "    description: {zh: 说明, en: text}\n    icon: i\n",
        encoding="utf-8",
    )
    with pytest.raises(DefinitionError, match=complaint):
        read_definitions(path)


def test_levels_must_start_at_zero_and_codes_be_unique(tmp_path: Path) -> None:
    path = tmp_path / "badges.yaml"
    path.write_text(
        "levels:\n  - {code: leaf, threshold_grams: 10, name: {zh: 绿叶, en: Leaf}, icon: l}\nbadges: []\n",
        encoding="utf-8",
    )
    with pytest.raises(DefinitionError, match="starts at 0"):
        read_definitions(path)


# ---- evaluation ----------------------------------------------------------------------------------


def test_a_batch_awards_its_citizens_once_and_a_rerun_changes_nothing(badges) -> None:
    batch = uuid.uuid4()
    alice, bob, carol = make_citizen(), make_citizen(), make_citizen()
    for day in range(1, 11):  # ten metro trips on ten consecutive days, 10 x 150 g = 1.5 kg
        credited(alice, f"2026-03-{day:02d}T02:00:00", grams=150, batch_id=batch)
    credited(bob, "2026-03-01T02:00:00", scenario="recycling_dropoff", grams=900, batch_id=batch)
    credited(carol, "2026-03-01T02:00:00", status="capped", batch_id=batch)  # nothing credited: no badge
    audits_before = db.session.scalar(select(func.count()).select_from(AuditEntry))

    first = evaluate_batch(batch)

    assert awarded(alice) == {"first_step", "first_metro", "metro_10", "co2e_1kg", "streak_3", "streak_7"}
    assert awarded(bob) == {"first_step", "first_recycling"}
    assert awarded(carol) == set()
    assert first == {"citizens": 2, "awarded": 8}
    audit = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert audit.action == "honours.awarded"
    assert audit.details["batch_id"] == str(batch) and audit.details["awarded"] == 8
    assert audit.details["badges"]["first_step"] == 2

    when = db.session.scalar(select(CitizenHonour.awarded_at).where(CitizenHonour.citizen_id == alice).limit(1))
    assert evaluate_batch(batch) == {"citizens": 2, "awarded": 0}
    assert db.session.scalar(select(func.count()).select_from(CitizenHonour)) == 8
    assert db.session.scalar(select(CitizenHonour.awarded_at).where(CitizenHonour.citizen_id == alice).limit(1)) == when
    # One audit row for the awarding run, none for the rerun that awarded nothing.
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == audits_before + 1
    # One notification per award, never a second one on the rerun.
    notices = db.session.execute(
        select(Notification.citizen_id, Notification.kind, Notification.payload).order_by(Notification.id)
    ).all()
    assert len(notices) == 8 and {kind for _, kind, _ in notices} == {"badge_earned"}
    assert sorted(payload["badge_code"] for citizen, _, payload in notices if citizen == bob) == [
        "first_recycling", "first_step"
    ]


def test_self_declared_events_are_evaluated_by_their_event_ids(badges) -> None:
    citizen = make_citizen()
    credited(citizen, "2026-03-01T02:00:00", scenario="paperless", grams=20)
    credited(citizen, "2026-03-02T02:00:00", scenario="paperless", status="duplicate_item")
    event_ids = db.session.scalars(select(InboundEvent.id).where(InboundEvent.citizen_id == citizen)).all()
    assert evaluate_events(list(event_ids)) == {"citizens": 1, "awarded": 1}
    assert awarded(citizen) == {"first_step"}
    assert evaluate_events(list(event_ids)) == {"citizens": 1, "awarded": 0}

def test_history_outside_the_batch_counts_towards_the_rules(badges) -> None:
    citizen = make_citizen()
    for day in range(1, 10):
        credited(citizen, f"2026-02-{day:02d}T02:00:00")  # nine earlier trips, other batches
    batch = uuid.uuid4()
    credited(citizen, "2026-03-01T02:00:00", batch_id=batch)
    evaluate_batch(batch)
    assert "metro_10" in awarded(citizen)


def test_only_credited_events_count(badges) -> None:
    citizen = make_citizen()
    for status in ("flagged", "rejected", "capped", "accepted", "no_consent"):
        credited(citizen, "2026-03-01T02:00:00", status=status, grams=50_000)
    assert citizen_stats([citizen])[citizen].events == 0
    assert evaluate_citizens([citizen], reason={}) == {"citizens": 1, "awarded": 0}


def test_a_citizen_below_every_threshold_gets_nothing(badges) -> None:
    citizen = make_citizen()
    for day in range(1, 10):  # nine trips: not ten
        credited(citizen, f"2026-03-{day * 2:02d}T02:00:00", grams=100)  # every other day: no streak
    evaluate_citizens([citizen], reason={})
    assert awarded(citizen) == {"first_step", "first_metro"}


# ---- streaks across Asia/Shanghai midnight -------------------------------------------------------


def test_two_events_a_minute_apart_across_shanghai_midnight_are_two_days(db_session) -> None:
    citizen = make_citizen()
    credited(citizen, "2026-03-01T15:59:00")  # 23:59 on 1 March in Shanghai
    credited(citizen, "2026-03-01T16:01:00")  # 00:01 on 2 March in Shanghai (same UTC day)
    stats = citizen_stats([citizen], now=at("2026-03-02T04:00:00"))[citizen]
    assert (stats.longest_streak, stats.current_streak) == (2, 2)


def test_two_utc_days_inside_one_shanghai_day_are_one_day(db_session) -> None:
    citizen = make_citizen()
    credited(citizen, "2026-03-01T16:30:00")  # 00:30 on 2 March in Shanghai
    credited(citizen, "2026-03-02T15:30:00")  # 23:30 on 2 March in Shanghai (next UTC day)
    stats = citizen_stats([citizen], now=at("2026-03-02T15:45:00"))[citizen]
    assert (stats.longest_streak, stats.current_streak) == (1, 1)


def test_a_missed_day_breaks_the_streak_and_the_longest_run_is_kept(db_session) -> None:
    citizen = make_citizen()
    for day in (1, 2, 3, 4):  # four days running
        credited(citizen, f"2026-03-{day:02d}T02:00:00")
    for day in (6, 7):  # a gap on the 5th, then two days
        credited(citizen, f"2026-03-{day:02d}T02:00:00")
    on_the_8th = citizen_stats([citizen], now=at("2026-03-08T01:00:00"))[citizen]  # 09:00 on the 8th
    assert (on_the_8th.longest_streak, on_the_8th.current_streak) == (4, 2)  # still alive: yesterday counts
    on_the_9th = citizen_stats([citizen], now=at("2026-03-09T01:00:00"))[citizen]
    assert (on_the_9th.longest_streak, on_the_9th.current_streak) == (4, 0)  # the 8th was missed


def test_a_streak_badge_needs_consecutive_shanghai_days(badges) -> None:
    ok, short = make_citizen(), make_citizen()
    # 22:00 UTC is 06:00 the next morning in Shanghai: 28 Feb, 1 and 2 March in Shanghai days.
    for value in ("2026-02-27T22:00:00", "2026-02-28T22:00:00", "2026-03-01T22:00:00"):
        credited(ok, value)
    # Three UTC days, but 15:00 and 17:00 UTC fall on the 1st and 2nd, then a gap.
    for value in ("2026-03-01T15:00:00", "2026-03-01T17:00:00", "2026-03-03T17:00:00"):
        credited(short, value)
    evaluate_citizens([ok, short], reason={})
    assert "streak_3" in awarded(ok)
    assert "streak_3" not in awarded(short)


# ---- levels --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grams", "level", "following"),
    [(0, "sprout", "leaf"), (9_999, "sprout", "leaf"), (10_000, "leaf", "tree"), (999_999, "tree", "forest"),
     (1_000_000, "forest", None), (10**12, "forest", None)],
)
def test_levels_by_cumulative_grams(badges, grams: int, level: str, following: str | None) -> None:
    current, nxt = level_for(grams)
    assert current is not None and current.code == level
    assert (nxt.code if nxt else None) == following


# ---- granting (荣誉兑换) --------------------------------------------------------------------------


def test_grant_honour_is_once_audited_and_refuses_unknown_badges(badges) -> None:
    citizen = make_citizen()
    assert grant_honour(citizen, "low_carbon_day_2027", source="offer:12") is True
    assert grant_honour(citizen, "low_carbon_day_2027", source="offer:12") is False
    honour = db.session.get(CitizenHonour, (citizen, "low_carbon_day_2027"))
    assert honour.source == "offer:12"
    [notice] = db.session.scalars(select(Notification).where(Notification.citizen_id == citizen)).all()
    assert (notice.kind, notice.payload) == ("badge_earned", {"badge_code": "low_carbon_day_2027", "source": "offer"})
    audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "honours.granted")).one()
    assert (audit.object_id, audit.actor_id) == ("low_carbon_day_2027", str(citizen))
    with pytest.raises(AppError) as error:
        grant_honour(citizen, "no_such_badge", source="offer:12")
    assert (error.value.code, error.value.status) == ("badge_not_found", 404)


def test_granted_badges_are_never_earned_by_behaviour(badges) -> None:
    citizen = make_citizen()
    for day in range(1, 31):
        credited(citizen, f"2026-03-{day:02d}T02:00:00", grams=5_000)
    evaluate_citizens([citizen], reason={})
    assert "low_carbon_day_2027" not in awarded(citizen)
    assert {"streak_30", "co2e_100kg"} <= awarded(citizen)


# ---- the CLI -------------------------------------------------------------------------------------


def test_flask_honours_load_and_evaluate(app, db_session, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["honours", "load"])
    assert result.exit_code == 0 and "badge first_step: created" in result.output
    citizen = make_citizen()
    credited(citizen, "2026-03-01T02:00:00")
    result = runner.invoke(args=["honours", "evaluate"])
    assert result.exit_code == 0 and "badges awarded" in result.output
    assert awarded(citizen) == {"first_step", "first_metro"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("levels: []\nbadges: []\n", encoding="utf-8")
    result = runner.invoke(args=["honours", "load", "--file", str(bad)])
    assert result.exit_code != 0 and "levels" in result.output
