"""The personal carbon account (BRIEF R2.1, R2.3): points (with debt and what expires soon), grams avoided,
per scenario, 30 days, equivalents.

A read model: points come from the citizen's ledger account, grams from DailyUsage (credited grams
per citizen, scenario and Asia/Shanghai day, written by the crediting job). Four small queries,
no ORM objects: this is the mini-app's home screen.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.ledger.lots import expiring_soon
from app.ledger.reversal import outstanding_debt
from app.ledger.service import account_balances
from app.models_base import utcnow

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAILY_SERIES_DAYS = 30

TREE_SOURCE = (
    "Ant Forest (蚂蚁森林) counts 17.9 kg CO2 for one saxaul tree (梭梭); shown as tree-years of absorption."
)
CAR_SOURCE = "A petrol car: 7 L/100 km × ≈2.3 kg CO2 per litre of petrol ≈ 0.16 kg CO2 per km."


def shanghai_today(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(SHANGHAI).date()


def account_summary(citizen_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the account screen shows; periods are Asia/Shanghai calendar days, months, years."""
    today = shanghai_today(now)
    grams = _grams_by_period(citizen_id, today)
    notice_days = int(current_app.config.get("POINTS_EXPIRY_NOTICE_DAYS", 30))
    return {
        "points": {**asdict(account_balances(citizen_id)), "debt": outstanding_debt(citizen_id)},
        "expiring_soon": expiring_soon(citizen_id, today, notice_days),
        "co2e_grams": grams,
        "by_scenario": _by_scenario(citizen_id, now or utcnow()),
        "daily": _daily_series(citizen_id, today),
        "equivalents": equivalents(grams["all_time"]),
    }


def equivalents(grams: int) -> dict[str, Any]:
    """Trees-years and car-km for `grams`, one decimal, rounded down (never overstate a saving)."""
    tree_grams = int(current_app.config["TREE_GRAMS_PER_YEAR"])
    car_grams = int(current_app.config["CAR_GRAMS_PER_KM"])
    return {
        "trees": _one_decimal(grams, tree_grams),
        "car_km": _one_decimal(grams, car_grams),
        "sources": {
            "trees": {"grams_per_unit": tree_grams, "source": TREE_SOURCE},
            "car_km": {"grams_per_unit": car_grams, "source": CAR_SOURCE},
        },
    }


def _one_decimal(grams: int, per_unit: int) -> str:
    return str((Decimal(grams) / Decimal(per_unit)).quantize(Decimal("0.1"), rounding=ROUND_DOWN))


def _grams_by_period(citizen_id: int, today: date) -> dict[str, int]:
    row = db.session.execute(
        text(
            """
            SELECT coalesce(sum(grams) FILTER (WHERE day = :today), 0) AS today,
                   coalesce(sum(grams) FILTER (WHERE day BETWEEN :month_start AND :today), 0) AS month,
                   coalesce(sum(grams) FILTER (WHERE day BETWEEN :year_start AND :today), 0) AS year,
                   coalesce(sum(grams), 0) AS all_time
            FROM daily_usage WHERE citizen_id = :citizen_id
            """
        ),
        {
            "citizen_id": citizen_id,
            "today": today,
            "month_start": today.replace(day=1),
            "year_start": today.replace(month=1, day=1),
        },
    ).one()
    return {name: int(value) for name, value in row._mapping.items()}


def _by_scenario(citizen_id: int, now: datetime) -> list[dict[str, Any]]:
    """All-time grams and points per scenario, named by the version in force now (else the latest)."""
    rows = db.session.execute(
        text(
            """
            SELECT s.code AS scenario_code, v.name, u.grams, u.points
            FROM (SELECT scenario_id, sum(grams) AS grams, sum(points) AS points
                  FROM daily_usage WHERE citizen_id = :citizen_id GROUP BY scenario_id) AS u
            JOIN scenarios s ON s.id = u.scenario_id
            LEFT JOIN LATERAL (
                SELECT name FROM scenario_versions
                WHERE scenario_id = u.scenario_id
                ORDER BY (effective_from <= :now) DESC, version DESC
                LIMIT 1
            ) AS v ON true
            ORDER BY u.grams DESC, s.code
            """
        ),
        {"citizen_id": citizen_id, "now": now},
    ).all()
    return [
        {
            "scenario_code": row.scenario_code,
            "name": row.name or {"zh": row.scenario_code, "en": row.scenario_code},
            "grams": int(row.grams),
            "points": int(row.points),
        }
        for row in rows
    ]


def _daily_series(citizen_id: int, today: date) -> list[dict[str, Any]]:
    """The last 30 Shanghai days, oldest first, days without usage as zeros."""
    first = today - timedelta(days=DAILY_SERIES_DAYS - 1)
    rows = db.session.execute(
        text(
            """
            SELECT day, sum(grams) AS grams, sum(points) AS points
            FROM daily_usage
            WHERE citizen_id = :citizen_id AND day BETWEEN :first AND :today
            GROUP BY day
            """
        ),
        {"citizen_id": citizen_id, "first": first, "today": today},
    ).all()
    by_day = {row.day: (int(row.grams), int(row.points)) for row in rows}
    series = []
    for offset in range(DAILY_SERIES_DAYS):
        day = first + timedelta(days=offset)
        grams, points = by_day.get(day, (0, 0))
        series.append({"date": day, "grams": grams, "points": points})
    return series
