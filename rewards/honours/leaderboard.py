"""District leaderboards (BRIEF R6.4): only citizens who opted in, by nickname, never by id.

Grams are credited CO2e from daily_usage (per citizen and Asia/Shanghai day) over the current
month or year; one statement ranks the district and returns the top N plus the caller's own row.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import text

from app.errors import AppError
from app.extensions import db
from app.ledger.account import shanghai_today
from rewards.honours.service import DEFAULT_NICKNAME

_BOARD = text(
    """
    WITH board AS (
        SELECT p.citizen_id, p.nickname, coalesce(sum(u.grams), 0) AS grams
        FROM honour_profiles p
        JOIN citizens c ON c.id = p.citizen_id
        LEFT JOIN daily_usage u ON u.citizen_id = p.citizen_id AND u.day BETWEEN :start AND :today
        WHERE p.leaderboard_opt_in AND c.status = 'active' AND c.home_district = :district
        GROUP BY p.citizen_id, p.nickname
    ), ranked AS (
        SELECT citizen_id, nickname, grams,
               rank() OVER (ORDER BY grams DESC) AS rank,
               row_number() OVER (ORDER BY grams DESC, citizen_id) AS position,
               count(*) OVER () AS participants
        FROM board
    )
    SELECT nickname, grams, rank, position, participants, citizen_id = :me AS mine
    FROM ranked WHERE position <= :limit OR citizen_id = :me
    ORDER BY position
    """
)


def period_start(period: str, today: date) -> date:
    return today.replace(day=1) if period == "month" else today.replace(month=1, day=1)


def leaderboard(
    citizen_id: int, *, district: str | None, period: str, limit: int, now: datetime | None = None
) -> dict[str, Any]:
    """The top `limit` opted-in citizens of a district (the caller's own by default) and the caller's rank."""
    from app.accounts.models import Citizen

    if district is None:
        citizen = db.session.get(Citizen, citizen_id)
        district = citizen.home_district if citizen else None
        if district is None:
            raise AppError(
                "district_required",
                "Name a district, or set your home district.",
                "请指定区，或先设置所在区。",
                400,
            )
    today = shanghai_today(now)
    start = period_start(period, today)
    rows = db.session.execute(
        _BOARD, {"district": district, "start": start, "today": today, "me": citizen_id, "limit": limit}
    ).all()
    items = [_entry(row) for row in rows if row.position <= limit]
    mine = next((_entry(row) for row in rows if row.mine), None)
    return {
        "district": district,
        "period": period,
        "period_start": start,
        "period_end": today,
        "participants": int(rows[0].participants) if rows else 0,
        "items": items,
        "me": mine,
    }


def _entry(row: Any) -> dict[str, Any]:
    return {"rank": int(row.rank), "nickname": row.nickname or DEFAULT_NICKNAME, "grams": int(row.grams),
            "is_me": bool(row.mine)}
