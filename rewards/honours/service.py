"""Honours: loading badge/level definitions, evaluating and awarding badges, levels, /me/honours,
granting an honour (荣誉兑换), the nickname and the leaderboard opt-in. Flushes, never commits.

Stats come from `inbound_events` (status 'credited', credited_grams, occurred_at), a constant
number of statements for a whole batch of citizens: evaluation is set-based, never per citizen.
"""
from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from app.audit.service import record
from app.errors import AppError
from app.extensions import db
from app.ledger.account import shanghai_today
from app.models_base import utcnow
from app.notifications.service import NewNotification, record_many
from rewards.honours.definitions import read_definitions
from rewards.honours.models import CitizenHonour, HonourBadge, HonourLevel, HonourProfile
from rewards.honours.rules import CitizenStats, Progress, progress

log = logging.getLogger(__name__)

DEFAULT_NICKNAME = "低碳市民"
EVALUATE_CHUNK = 5000  # citizens per statement when evaluating everyone (`flask honours evaluate`)


# --------------------------------------------------------------------------------------------
# Definitions


def load_definitions(path: Path | str | None = None) -> list[str]:
    """Upsert badges and replace levels from the YAML file; a badge no longer listed is deactivated."""
    definitions = read_definitions(path)
    now = utcnow()
    existing = {badge.code: badge for badge in db.session.scalars(select(HonourBadge))}
    report = []
    for order, item in enumerate(definitions["badges"]):
        values = {
            "rule_type": item["rule"]["type"],
            "params": item["rule"]["params"],
            "name_zh": item["name"]["zh"],
            "name_en": item["name"]["en"],
            "description_zh": item["description"]["zh"],
            "description_en": item["description"]["en"],
            "icon": item["icon"],
            "sort_order": order,
            "active": True,
        }
        badge = existing.pop(item["code"], None)
        if badge is None:
            db.session.add(HonourBadge(code=item["code"], updated_at=now, **values))
            report.append(f"badge {item['code']}: created")
        elif any(getattr(badge, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(badge, key, value)
            badge.updated_at = now
            report.append(f"badge {item['code']}: updated")
    for badge in existing.values():
        if badge.active:
            badge.active = False
            badge.updated_at = now
            report.append(f"badge {badge.code}: deactivated (no longer in the file; awards kept)")
    levels = [(level["code"], level["threshold_grams"], level["name"]["zh"], level["name"]["en"], level["icon"])
              for level in definitions["levels"]]
    current = [(lv.code, lv.threshold_grams, lv.name_zh, lv.name_en, lv.icon) for lv in _levels()]
    if sorted(levels) != sorted(current):
        db.session.execute(text("DELETE FROM honour_levels"))
        db.session.add_all(
            HonourLevel(code=code, threshold_grams=grams, name_zh=zh, name_en=en, icon=icon)
            for code, grams, zh, en, icon in levels
        )
        report.append(f"levels: {len(levels)} loaded")
    db.session.flush()
    return report or ["badges and levels unchanged"]


def _levels() -> list[HonourLevel]:
    return list(db.session.scalars(select(HonourLevel).order_by(HonourLevel.threshold_grams)))


def _active_badges() -> list[HonourBadge]:
    return list(
        db.session.scalars(select(HonourBadge).where(HonourBadge.active).order_by(HonourBadge.sort_order))
    )


# --------------------------------------------------------------------------------------------
# Stats and evaluation

_SCENARIO_STATS = text(
    """
    SELECT citizen_id, scenario_code, count(*) AS events, coalesce(sum(credited_grams), 0) AS grams
    FROM inbound_events
    WHERE citizen_id = ANY(CAST(:ids AS bigint[])) AND status = 'credited'
    GROUP BY citizen_id, scenario_code
    """
)
# Runs of consecutive Asia/Shanghai days: day minus its row number is constant along a run.
_STREAKS = text(
    """
    WITH days AS (
        SELECT DISTINCT citizen_id, CAST(timezone('Asia/Shanghai', occurred_at) AS date) AS day
        FROM inbound_events
        WHERE citizen_id = ANY(CAST(:ids AS bigint[])) AND status = 'credited'
    ), runs AS (
        SELECT citizen_id, day,
               day - CAST(row_number() OVER (PARTITION BY citizen_id ORDER BY day) AS integer) AS run
        FROM days
    ), streaks AS (
        SELECT citizen_id, count(*) AS length, max(day) AS last_day FROM runs GROUP BY citizen_id, run
    )
    SELECT citizen_id, max(length) AS longest,
           coalesce(max(length) FILTER (WHERE last_day >= :yesterday), 0) AS current
    FROM streaks GROUP BY citizen_id
    """
)


def citizen_stats(citizen_ids: Iterable[int], *, now: datetime | None = None) -> dict[int, CitizenStats]:
    """Stats for every given citizen in two statements (citizens without credited events get zeros)."""
    ids = sorted(set(citizen_ids))
    stats = {citizen_id: CitizenStats() for citizen_id in ids}
    if not ids:
        return stats
    for row in db.session.execute(_SCENARIO_STATS, {"ids": ids}):
        entry = stats[row.citizen_id]
        entry.by_scenario[row.scenario_code] = (int(row.events), int(row.grams))
        entry.events += int(row.events)
        entry.grams += int(row.grams)
    yesterday = shanghai_today(now) - timedelta(days=1)
    for row in db.session.execute(_STREAKS, {"ids": ids, "yesterday": yesterday}):
        stats[row.citizen_id].longest_streak = int(row.longest)
        stats[row.citizen_id].current_streak = int(row.current)
    return stats


_AWARD = text(
    """
    INSERT INTO citizen_honours (citizen_id, badge_code, awarded_at, source)
    SELECT citizen_id, badge_code, :now, 'rule'
    FROM unnest(CAST(:citizen_ids AS bigint[]), CAST(:badge_codes AS text[])) AS t(citizen_id, badge_code)
    ORDER BY citizen_id, badge_code
    ON CONFLICT DO NOTHING
    RETURNING citizen_id, badge_code
    """
)
NOTICE_KIND = "badge_earned"


def _notice(citizen_id: int, badge_code: str, source: str) -> NewNotification:
    """The mini-app renders the text from the badge code (codes only, no personal data)."""
    return NewNotification(
        citizen_id=citizen_id,
        kind=NOTICE_KIND,
        payload={"badge_code": badge_code, "source": source},
        dedupe_key=f"badge:{badge_code}:citizen:{citizen_id}",
    )


def evaluate_citizens(citizen_ids: Iterable[int], *, reason: dict[str, Any]) -> dict[str, int]:
    """Award every badge the citizens' credited history has reached; awarded once, a rerun adds nothing.

    One audit row per run (counts per badge, no personal data) names `reason` (e.g. the batch).
    """
    ids = sorted(set(citizen_ids))
    if not ids:
        return {"citizens": 0, "awarded": 0}
    badges = [badge for badge in _active_badges() if badge.rule_type != "granted"]
    if not badges:
        return {"citizens": len(ids), "awarded": 0}
    stats = citizen_stats(ids)
    pairs = [
        (citizen_id, badge.code)
        for citizen_id, citizen in stats.items()
        for badge in badges
        if (reached := progress(badge.rule_type, badge.params, citizen)) is not None and reached.reached
    ]
    awarded: Counter[str] = Counter()
    if pairs:
        rows = db.session.execute(
            _AWARD,
            {"now": utcnow(), "citizen_ids": [p[0] for p in pairs], "badge_codes": [p[1] for p in pairs]},
        ).all()
        awarded.update(row.badge_code for row in rows)
        record_many([_notice(row.citizen_id, row.badge_code, "rule") for row in rows])
    total = sum(awarded.values())
    if total:
        record(
            "honours.awarded",
            actor_type="system",
            object_type="honours",
            details={**reason, "citizens": len(ids), "awarded": total, "badges": dict(sorted(awarded.items()))},
        )
    return {"citizens": len(ids), "awarded": total}


def evaluate_batch(batch_id: uuid.UUID) -> dict[str, int]:
    """Evaluate the citizens who had an event credited in this partner batch."""
    citizen_ids = db.session.scalars(
        text("SELECT DISTINCT citizen_id FROM inbound_events WHERE batch_id = :batch_id AND status = 'credited'"),
        {"batch_id": batch_id},
    ).all()
    return evaluate_citizens(citizen_ids, reason={"batch_id": str(batch_id)})


def evaluate_events(event_ids: list[int]) -> dict[str, int]:
    """Evaluate the citizens of these (self-declared or reviewed) events, if credited."""
    citizen_ids = db.session.scalars(
        text("SELECT DISTINCT citizen_id FROM inbound_events WHERE id = ANY(CAST(:ids AS bigint[])) "
             "AND status = 'credited'"),
        {"ids": sorted(set(event_ids))},
    ).all()
    return evaluate_citizens(citizen_ids, reason={"events": len(event_ids)})


def evaluate_everyone() -> dict[str, int]:
    """Backfill after new badges were loaded: every active citizen, in chunks of EVALUATE_CHUNK."""
    totals: Counter[str] = Counter()
    after = 0
    while True:
        ids = db.session.scalars(
            text("SELECT id FROM citizens WHERE status = 'active' AND id > :after ORDER BY id LIMIT :limit"),
            {"after": after, "limit": EVALUATE_CHUNK},
        ).all()
        if not ids:
            return dict(totals) or {"citizens": 0, "awarded": 0}
        totals.update(evaluate_citizens(ids, reason={"backfill": True}))
        after = ids[-1]


# --------------------------------------------------------------------------------------------
# Granting (荣誉兑换)


def badge_not_found() -> AppError:
    return AppError("badge_not_found", "No such honour.", "该荣誉不存在。", 404)


def grant_honour(citizen_id: int, badge_code: str, *, source: str) -> bool:
    """Grant a badge outside its rule, e.g. by an honour offer a citizen claimed for points.

    Returns False when the citizen already holds it (awarded once; the caller decides whether that
    is an error, e.g. refuse the claim before holding points). `source` names why, e.g. "offer:12".
    """
    badge = db.session.get(HonourBadge, badge_code)
    if badge is None or not badge.active:
        raise badge_not_found()
    inserted = db.session.execute(
        text(
            "INSERT INTO citizen_honours (citizen_id, badge_code, awarded_at, source) "
            "VALUES (:citizen_id, :code, :now, :source) ON CONFLICT DO NOTHING RETURNING badge_code"
        ),
        {"citizen_id": citizen_id, "code": badge_code, "now": utcnow(), "source": source[:64]},
    ).first()
    if inserted is None:
        return False
    record_many([_notice(citizen_id, badge_code, "offer" if source.startswith("offer") else "grant")])
    record(
        "honours.granted",
        actor_type="citizen",
        actor_id=citizen_id,
        object_type="honour_badge",
        object_id=badge_code,
        details={"source": source[:64]},
    )
    return True


def holds_honour(citizen_id: int, badge_code: str) -> bool:
    return db.session.get(CitizenHonour, (citizen_id, badge_code)) is not None


# --------------------------------------------------------------------------------------------
# Reading: /me/honours


def _name(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


def badge_view(badge: HonourBadge) -> dict[str, Any]:
    return {
        "code": badge.code,
        "name": _name(badge.name_zh, badge.name_en),
        "description": _name(badge.description_zh, badge.description_en),
        "icon": badge.icon,
    }


def _level_view(level: HonourLevel) -> dict[str, Any]:
    return {
        "code": level.code,
        "name": _name(level.name_zh, level.name_en),
        "icon": level.icon,
        "threshold_grams": level.threshold_grams,
    }


def level_for(grams: int) -> tuple[HonourLevel | None, HonourLevel | None]:
    """The level reached with `grams` cumulative CO2e and the next one (None past the last)."""
    current = following = None
    for level in _levels():
        if level.threshold_grams <= grams:
            current = level
        elif following is None:
            following = level
    return current, following


def my_honours(citizen_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """Earned badges (with when), the others with progress, the level and progress to the next."""
    stats = citizen_stats([citizen_id], now=now)[citizen_id]
    held = {
        honour.badge_code: honour
        for honour in db.session.scalars(select(CitizenHonour).where(CitizenHonour.citizen_id == citizen_id))
    }
    badges = {badge.code: badge for badge in db.session.scalars(select(HonourBadge).order_by(HonourBadge.sort_order))}
    earned = [
        {**badge_view(badges[code]), "awarded_at": honour.awarded_at, "source": _public_source(honour.source)}
        for code, honour in sorted(held.items(), key=lambda item: (item[1].awarded_at, item[0]), reverse=True)
    ]
    upcoming: list[tuple[float, int, dict[str, Any]]] = []
    for badge in badges.values():
        if badge.code in held or not badge.active:
            continue
        reached: Progress | None = progress(badge.rule_type, badge.params, stats)
        if reached is None:
            continue
        current = min(reached.current, reached.target)
        upcoming.append((
            -current / reached.target,
            badge.sort_order,
            {**badge_view(badge), "current": current, "target": reached.target, "unit": reached.unit},
        ))
    upcoming.sort(key=lambda item: (item[0], item[1]))
    level, following = level_for(stats.grams)
    return {
        "co2e_grams": stats.grams,
        "events": stats.events,
        "streak": {"current": stats.current_streak, "longest": stats.longest_streak},
        "earned": earned,
        "next": [item[2] for item in upcoming],
        "level": _level_view(level) if level else None,
        "next_level": (
            {**_level_view(following), "current": stats.grams, "target": following.threshold_grams}
            if following else None
        ),
        "profile": profile(citizen_id),
    }


def _public_source(source: str) -> str:
    """'rule' or 'offer' (what a citizen needs to know; internal ids stay inside)."""
    return source.split(":", 1)[0]


def earned_between(citizen_id: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = db.session.execute(
        select(CitizenHonour, HonourBadge)
        .join(HonourBadge, HonourBadge.code == CitizenHonour.badge_code)
        .where(CitizenHonour.citizen_id == citizen_id, CitizenHonour.awarded_at >= start,
               CitizenHonour.awarded_at < end)
        .order_by(CitizenHonour.awarded_at, CitizenHonour.badge_code)
    ).all()
    return [{**badge_view(badge), "awarded_at": honour.awarded_at} for honour, badge in rows]


# --------------------------------------------------------------------------------------------
# Profile: nickname and leaderboard opt-in


def profile(citizen_id: int) -> dict[str, Any]:
    row = db.session.get(HonourProfile, citizen_id)
    return {
        "nickname": row.nickname if row else None,
        "display_name": (row.nickname if row and row.nickname else DEFAULT_NICKNAME),
        "leaderboard_opt_in": bool(row and row.leaderboard_opt_in),
    }


def display_name(citizen_id: int) -> str:
    return str(profile(citizen_id)["display_name"])


def set_leaderboard(citizen_id: int, *, opt_in: bool, nickname: str | None, nickname_given: bool) -> dict[str, Any]:
    """Opt in or out of the district leaderboards; optionally set (or clear, with null) the nickname.

    Opting in needs a home district: the boards are per district and a citizen is ranked in theirs.
    """
    from app.accounts.models import Citizen

    citizen = db.session.get(Citizen, citizen_id)
    home_district = citizen.home_district if citizen else None
    if opt_in and home_district is None:
        raise AppError(
            "home_district_required",
            "Set your home district (PATCH /me) before joining the district leaderboard.",
            "加入区排行榜前请先设置所在区（PATCH /me）。",
            409,
        )
    row = db.session.get(HonourProfile, citizen_id)
    if row is None:
        row = HonourProfile(citizen_id=citizen_id, leaderboard_opt_in=False)
        db.session.add(row)
    changed_opt_in = row.leaderboard_opt_in != opt_in
    row.leaderboard_opt_in = opt_in
    if nickname_given:
        row.nickname = nickname
    row.updated_at = utcnow()
    db.session.flush()
    if changed_opt_in:
        record(
            "honours.leaderboard_opt_in" if opt_in else "honours.leaderboard_opt_out",
            actor_type="citizen",
            actor_id=citizen_id,
            object_type="citizen",
            object_id=citizen_id,
        )
    return {**profile(citizen_id), "home_district": home_district}
