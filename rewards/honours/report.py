"""The yearly low-carbon report (BRIEF R2.3): what a citizen avoided in one Asia/Shanghai calendar year.

Grams and events come from credited inbound events (by scenario and month), points from the
citizen's posted ledger transfers of that year, equivalents from app.ledger.account (one source
for the account page and the report), badges from the awards of that year.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from app.errors import AppError
from app.extensions import db
from app.ledger.account import SHANGHAI, equivalents, shanghai_today
from rewards.honours.service import earned_between, level_for

FIRST_REPORT_YEAR = 2020

_BY_SCENARIO_MONTH = text(
    """
    SELECT scenario_code,
           CAST(extract(month FROM timezone('Asia/Shanghai', occurred_at)) AS integer) AS month,
           count(*) AS events, coalesce(sum(credited_grams), 0) AS grams, coalesce(sum(points), 0) AS points
    FROM inbound_events
    WHERE citizen_id = :citizen_id AND status = 'credited' AND occurred_at >= :start AND occurred_at < :end
    GROUP BY 1, 2
    """
)
# Posted transfers only (a hold counts when it is posted; a void moves nothing).
_POINTS = text(
    """
    SELECT coalesce(sum(t.amount) FILTER (WHERE t.credit_account_id = me.id), 0) AS earned,
           coalesce(sum(t.amount) FILTER (WHERE t.debit_account_id = me.id), 0) AS spent
    FROM ledger_transfers t
    JOIN ledger_accounts me ON me.citizen_id = :citizen_id
    WHERE t.citizen_id = :citizen_id AND NOT t.pending AND t.kind <> 'void'
      AND t.created_at >= :start AND t.created_at < :end
    """
)
_SCENARIO_NAMES = text(
    """
    SELECT DISTINCT ON (s.code) s.code, v.name
    FROM scenarios s JOIN scenario_versions v ON v.scenario_id = s.id
    WHERE s.code = ANY(CAST(:codes AS text[]))
    ORDER BY s.code, v.version DESC
    """
)


def report_not_found() -> AppError:
    return AppError(
        "report_not_found",
        f"Reports exist for {FIRST_REPORT_YEAR} up to the current year.",
        f"年度报告仅提供 {FIRST_REPORT_YEAR} 年至今年。",
        404,
    )


def year_bounds(year: int, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The year's first instant and the next year's, in Asia/Shanghai; 404 outside the years we report."""
    if not FIRST_REPORT_YEAR <= year <= shanghai_today(now).year:
        raise report_not_found()
    return datetime(year, 1, 1, tzinfo=SHANGHAI), datetime(year + 1, 1, 1, tzinfo=SHANGHAI)


def yearly_report(citizen_id: int, year: int, *, now: datetime | None = None) -> dict[str, Any]:
    start, end = year_bounds(year, now=now)
    params = {"citizen_id": citizen_id, "start": start, "end": end}
    rows = db.session.execute(_BY_SCENARIO_MONTH, params).all()
    months = [{"month": month, "grams": 0, "events": 0} for month in range(1, 13)]
    scenarios: dict[str, dict[str, Any]] = {}
    for row in rows:
        months[row.month - 1]["grams"] += int(row.grams)
        months[row.month - 1]["events"] += int(row.events)
        entry = scenarios.setdefault(
            row.scenario_code,
            {"scenario_code": row.scenario_code, "grams": 0, "events": 0, "months": [0] * 12},
        )
        entry["grams"] += int(row.grams)
        entry["events"] += int(row.events)
        entry["months"][row.month - 1] += int(row.grams)
    names = {
        row.code: row.name
        for row in db.session.execute(_SCENARIO_NAMES, {"codes": sorted(scenarios)})
    } if scenarios else {}
    by_scenario = sorted(
        ({**entry, "name": names.get(code) or {"zh": code, "en": code}} for code, entry in scenarios.items()),
        key=lambda entry: (-entry["grams"], entry["scenario_code"]),
    )
    points = db.session.execute(_POINTS, params).one()
    grams = sum(month["grams"] for month in months)
    level, _ = level_for(grams)
    return {
        "year": year,
        "co2e_grams": grams,
        "events": sum(month["events"] for month in months),
        "active_days": _active_days(citizen_id, start, end),
        "points": {"earned": int(points.earned), "spent": int(points.spent)},
        "by_scenario": by_scenario,
        "by_month": months,
        "equivalents": equivalents(grams),
        "badges": earned_between(citizen_id, start, end),
        "year_level": (
            {"code": level.code, "name": {"zh": level.name_zh, "en": level.name_en}, "icon": level.icon,
             "threshold_grams": level.threshold_grams}
            if level else None
        ),
    }


def _active_days(citizen_id: int, start: datetime, end: datetime) -> int:
    return int(
        db.session.execute(
            text(
                "SELECT count(DISTINCT CAST(timezone('Asia/Shanghai', occurred_at) AS date)) FROM inbound_events "
                "WHERE citizen_id = :citizen_id AND status = 'credited' "
                "AND occurred_at >= :start AND occurred_at < :end"
            ),
            {"citizen_id": citizen_id, "start": start, "end": end},
        ).scalar_one()
    )
