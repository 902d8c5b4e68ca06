"""Campaigns (BRIEF R5.3): operators run them; crediting asks `apply_campaigns` for the extra points.

The rule for an event (documented in the API too):
- a campaign applies to an event credited with base points > 0 whose occurred_at lies in
  [starts_at, ends_at), whose scenario is one of the campaign's (or the campaign names none) and
  whose district is one of the campaign's (or the campaign names none; an event without a district
  only meets campaigns without a district list);
- its extra is floor(base × (multiplier − 1)) + bonus_points;
- campaigns do NOT stack: an event gets the single campaign giving it the largest extra (ties: the
  lowest id). Stacking would compound (×2 × ×2 = ×4) and make one event draw on several budgets;
  an operator who wants ×2 and +10 together puts both on one campaign;
- a campaign whose budget is already spent when the batch starts is out of the running (the next
  best applies); within a batch, budgets are consumed in occurred_at order (then event id): the
  event that meets the end of a budget gets what is left (partial), the later ones nothing — they
  do not fall back to another campaign, which keeps the choice a single pass over the batch.

Services flush, never commit: the request or the crediting job commits once.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.audit import service as audit
from app.errors import AppError, not_found
from app.extensions import db
from app.pagination import decode_cursor, page
from rewards.campaigns.models import Campaign

# Which status may follow which (indico's transition tables): `ended` is final; a draft may be
# dropped (ended) without ever going live.
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"live", "ended"}),
    "live": frozenset({"paused", "ended"}),
    "paused": frozenset({"live", "ended"}),
    "ended": frozenset(),
}
# The terms crediting depends on: frozen once a campaign has left draft, so an award already made
# always matches the campaign it names (and the crediting hook need not re-read them under lock).
TERMS = ("starts_at", "ends_at", "scenario_codes", "districts", "multiplier", "bonus_points")


# --------------------------------------------------------------------------------------------
# Operators


def create_campaign(actor_subject: str, data: dict[str, Any]) -> Campaign:
    """A new campaign, draft unless asked live; its code is unique (409 campaign_code_taken)."""
    _check_scenarios(data.get("scenario_codes"))
    status = data.get("status", "draft")
    campaign = Campaign(
        code=data["code"],
        title=data["title"],
        starts_at=data["starts_at"],
        ends_at=data["ends_at"],
        scenario_codes=_normalised(data.get("scenario_codes")),
        districts=_normalised(data.get("districts")),
        multiplier=data.get("multiplier", Decimal(1)),
        bonus_points=data.get("bonus_points", 0),
        budget_points=data["budget_points"],
        used_points=0,
        status="draft",
        created_by=actor_subject,
    )
    _check_terms(campaign)
    if status == "live":
        _check_can_go_live(campaign)
        campaign.status = "live"
    try:
        with db.session.begin_nested():
            db.session.add(campaign)
            db.session.flush()
    except IntegrityError:
        raise AppError("campaign_code_taken", "A campaign with this code exists.", "该活动编码已存在。", 409) from None
    audit.record(
        "campaign.created",
        actor_type=_actor_kind(actor_subject),
        actor_id=actor_subject.partition(":")[2],
        object_type="campaign",
        object_id=campaign.id,
        details={"code": campaign.code, "status": campaign.status, **_terms_for_audit(campaign)},
    )
    return campaign


def update_campaign(actor_subject: str, campaign_id: int, changes: dict[str, Any]) -> Campaign:
    """Change a campaign: its status (pause takes effect at once), title, budget; its terms only while draft.

    The row is locked first, so a change and a crediting batch consuming the budget queue.
    """
    campaign = db.session.scalar(select(Campaign).where(Campaign.id == campaign_id).with_for_update())
    if campaign is None:
        raise not_found("campaign", "活动")
    before = {"status": campaign.status, "budget_points": campaign.budget_points}
    terms = {name: changes[name] for name in TERMS if name in changes}
    if terms and campaign.status != "draft":
        raise AppError(
            "campaign_not_editable",
            "A campaign's window, scenarios, districts, multiplier and bonus change only while it is a draft.",
            "活动发布后不能修改时间、场景、区域、倍数和奖励积分。",
            409,
        )
    if "scenario_codes" in terms:
        _check_scenarios(terms["scenario_codes"])
        terms["scenario_codes"] = _normalised(terms["scenario_codes"])
    if "districts" in terms:
        terms["districts"] = _normalised(terms["districts"])
    for name, value in terms.items():
        setattr(campaign, name, value)
    _check_terms(campaign)
    if "title" in changes:
        campaign.title = changes["title"]
    if "budget_points" in changes:
        if changes["budget_points"] < campaign.used_points:
            raise AppError(
                "budget_below_used",
                f"The budget cannot go below the {campaign.used_points} points already used.",
                f"预算不能低于已发放的 {campaign.used_points} 积分。",
                409,
            )
        campaign.budget_points = changes["budget_points"]
    status = changes.get("status")
    if status is not None and status != campaign.status:
        if status not in TRANSITIONS[campaign.status]:
            raise AppError(
                "invalid_status_transition",
                f"A {campaign.status} campaign cannot become {status}.",
                f"活动状态不能从 {campaign.status} 变为 {status}。",
                409,
            )
        if status == "live":
            _check_can_go_live(campaign)
        campaign.status = status
    db.session.flush()
    audit.record(
        "campaign.updated",
        actor_type=_actor_kind(actor_subject),
        actor_id=actor_subject.partition(":")[2],
        object_type="campaign",
        object_id=campaign.id,
        details={
            "code": campaign.code,
            "changed": sorted(changes),
            "before": before,
            "after": {"status": campaign.status, "budget_points": campaign.budget_points},
        },
    )
    return campaign


def get_campaign(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise not_found("campaign", "活动")
    return campaign


def list_campaigns(status: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """Every campaign (optionally of one status), newest first."""
    after = decode_cursor(cursor, 1)
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(Campaign.status == status)
    if after is not None:
        query = query.where(Campaign.id < _int(after[0]))
    return page(list(db.session.scalars(query)), limit, key=lambda c: [c.id])


def list_public_campaigns(cursor: str | None, limit: int, now: datetime | None = None) -> dict[str, Any]:
    """What citizens see: live campaigns not over yet (running or announced), soonest first."""
    now = now or datetime.now(UTC)
    after = decode_cursor(cursor, 2)
    query = (
        select(Campaign)
        .where(Campaign.status == "live", Campaign.ends_at > now)
        .order_by(Campaign.starts_at, Campaign.id)
        .limit(limit + 1)
    )
    if after is not None:
        starts_at = _cursor_time(after[0])
        query = query.where(
            (Campaign.starts_at > starts_at) | ((Campaign.starts_at == starts_at) & (Campaign.id > _int(after[1])))
        )
    return page(list(db.session.scalars(query)), limit, key=lambda c: [c.starts_at.isoformat(), c.id])


def _cursor_time(value: Any) -> datetime:
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise _invalid_cursor()
    return at


def _int(value: Any) -> int:
    if type(value) is not int:
        raise _invalid_cursor()
    return value


def _invalid_cursor() -> AppError:
    return AppError("invalid_cursor", "The cursor is invalid.", "分页游标无效。", 400)


def _normalised(values: list[str] | None) -> list[str] | None:
    """Sorted and unique; None (every scenario or district) stays None."""
    return None if values is None else sorted(set(values))


def _check_scenarios(codes: list[str] | None) -> None:
    if not codes:
        return
    from scenarios.models import Scenario

    known = set(db.session.scalars(select(Scenario.code).where(Scenario.code.in_(set(codes)))))
    unknown = sorted(set(codes) - known)
    if unknown:
        raise AppError(
            "unknown_scenario",
            f"Unknown scenario codes: {', '.join(unknown)}.",
            f"未知的场景编码：{'、'.join(unknown)}。",
            422,
        )


def _check_terms(campaign: Campaign) -> None:
    """The rules the table's CHECKs also hold, answered as a 422 instead of a 500 after a PATCH."""
    if campaign.ends_at <= campaign.starts_at:
        raise AppError("invalid_window", "ends_at must be after starts_at.", "结束时间必须晚于开始时间。", 422)
    if campaign.multiplier <= 1 and campaign.bonus_points <= 0:
        raise AppError(
            "campaign_gives_nothing",
            "Set a multiplier above 1 or a bonus above 0.",
            "请设置大于 1 的倍数或大于 0 的奖励积分。",
            422,
        )


def _check_can_go_live(campaign: Campaign) -> None:
    if campaign.ends_at <= datetime.now(UTC):
        raise AppError("campaign_over", "This campaign's window is already over.", "该活动时间已过。", 409)


def _actor_kind(subject: str) -> str:
    """"staff:3" -> "staff": the audit row keeps the kind and the id apart."""
    return subject.partition(":")[0]


def _terms_for_audit(campaign: Campaign) -> dict[str, Any]:
    return {
        "starts_at": campaign.starts_at.isoformat(),
        "ends_at": campaign.ends_at.isoformat(),
        "scenario_codes": campaign.scenario_codes,
        "districts": campaign.districts,
        "multiplier": str(campaign.multiplier),
        "bonus_points": campaign.bonus_points,
        "budget_points": campaign.budget_points,
    }


# --------------------------------------------------------------------------------------------
# The crediting hook


@dataclass(frozen=True, slots=True)
class CampaignInput:
    """One event crediting is about to post, with the points it earned before any campaign."""

    event_id: int
    scenario_code: str
    occurred_at: datetime
    district: str | None
    base_points: int


@dataclass(frozen=True, slots=True)
class CampaignOutcome:
    """The extra points a campaign gives one event; `details()` is what its ledger entry shows."""

    campaign_id: int
    campaign_code: str
    title: dict[str, Any]
    multiplier: Decimal
    bonus_points: int
    extra_points: int
    partial: bool  # the budget ran out on this event: it got less than the full extra

    def details(self) -> dict[str, Any]:
        return {
            "code": self.campaign_code,
            "title": self.title,
            "multiplier": _decimal_text(self.multiplier),
            "bonus_points": self.bonus_points,
            "extra_points": self.extra_points,
            "partial": self.partial,
        }


@dataclass(frozen=True, slots=True)
class _Terms:
    id: int
    code: str
    title: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    scenario_codes: frozenset[str] | None
    districts: frozenset[str] | None
    multiplier: Decimal
    bonus_points: int
    status: str
    has_budget: bool  # as read when the batch started, unlocked: a spent campaign is out of the running

    def applies_to(self, credit: CampaignInput) -> bool:
        return (
            self.starts_at <= credit.occurred_at < self.ends_at
            and (self.scenario_codes is None or credit.scenario_code in self.scenario_codes)
            and (self.districts is None or credit.district in self.districts)
        )

    def extra_for(self, base_points: int) -> int:
        multiplied = (Decimal(base_points) * (self.multiplier - 1)).to_integral_value(rounding=ROUND_FLOOR)
        return int(multiplied) + self.bonus_points

    def outcome(self, credit: CampaignInput, points: int) -> CampaignOutcome:
        return CampaignOutcome(
            campaign_id=self.id,
            campaign_code=self.code,
            title=self.title,
            multiplier=self.multiplier,
            bonus_points=self.bonus_points,
            extra_points=points,
            partial=points < self.extra_for(credit.base_points),
        )


# Every campaign that was ever live and overlaps the batch's time range: the ones that may give
# now (live) and the ones that may have given on an earlier run (paused or ended since). A
# handful of rows, read once per batch.
_OVERLAPPING = text(
    """
    SELECT id, code, title, starts_at, ends_at, scenario_codes, districts, multiplier, bonus_points, status,
           used_points < budget_points AS has_budget
    FROM campaigns
    WHERE status <> 'draft' AND ends_at > :first AND starts_at <= :last
    ORDER BY id
    """
)
# What earlier runs already gave these events (a primary-key probe per event).
_AWARDED = text(
    "SELECT event_id, campaign_id, points FROM campaign_awards WHERE event_id = ANY(CAST(:ids AS bigint[]))"
)
# The campaigns this batch would draw on, locked in id order (two batches queue, never deadlock),
# with what is left of their budgets as committed now. A campaign paused meanwhile is not returned.
_LOCK_BUDGETS = text(
    """
    SELECT id, budget_points - used_points
    FROM campaigns
    WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'live'
    ORDER BY id
    FOR UPDATE
    """
)
# Record the awards; an event some other run awarded since our read keeps that award (DO NOTHING),
# and only the rows inserted here draw on the budgets.
_INSERT_AWARDS = text(
    """
    INSERT INTO campaign_awards (event_id, campaign_id, points, awarded_at)
    SELECT a.event_id, a.campaign_id, a.points, now()
    FROM unnest(CAST(:events AS bigint[]), CAST(:campaigns AS bigint[]), CAST(:points AS bigint[]))
         AS a(event_id, campaign_id, points)
    ORDER BY a.event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
)
# One conditional UPDATE for the batch's campaigns (rows locked above): never beyond a budget.
_CONSUME = text(
    """
    UPDATE campaigns c SET used_points = c.used_points + u.points, updated_at = now()
    FROM unnest(CAST(:ids AS bigint[]), CAST(:points AS bigint[])) AS u(id, points)
    WHERE c.id = u.id AND c.used_points + u.points <= c.budget_points
    RETURNING c.id
    """
)


def apply_campaigns(credits: Sequence[CampaignInput]) -> dict[int, CampaignOutcome]:
    """The extra points campaigns give a batch of credited events: event id -> outcome (events with none left out).

    Set-based: a fixed number of statements whatever the batch size, and none but one SELECT of a
    tiny table when no campaign overlaps the batch (most batches). Call it inside the crediting
    unit of work, once per batch, after each event's base points are known and before posting:
    the budgets and the awards commit or roll back with the earnings. A rerun of the same events
    returns the same outcomes and consumes nothing again (awards are keyed by event).
    """
    eligible = sorted((c for c in credits if c.base_points > 0), key=lambda c: (c.occurred_at, c.event_id))
    if not eligible:
        return {}
    rows = db.session.execute(
        _OVERLAPPING, {"first": eligible[0].occurred_at, "last": eligible[-1].occurred_at}
    ).all()
    if not rows:
        return {}
    campaigns = {row.id: _terms(row) for row in rows}
    by_event = {c.event_id: c for c in eligible}

    outcomes = _awarded_before(by_event, campaigns)
    wanted = _best_campaigns([c for c in eligible if c.event_id not in outcomes], campaigns)
    if not wanted:
        return outcomes
    drawn_on = sorted({campaign_id for campaign_id, _ in wanted.values()})
    left = dict(db.session.execute(_LOCK_BUDGETS, {"ids": _bigints(drawn_on)}).tuples().all())
    grants: dict[int, tuple[int, int]] = {}  # event id -> (campaign id, points)
    for event_id, (campaign_id, extra) in wanted.items():  # in occurred_at order
        budget = left.get(campaign_id, 0)
        points = min(extra, budget)
        if points > 0:
            grants[event_id] = (campaign_id, points)
            left[campaign_id] = budget - points
    if not grants:
        return outcomes

    event_ids = list(grants)
    inserted = set(
        db.session.execute(
            _INSERT_AWARDS,
            {
                "events": _bigints(event_ids),
                "campaigns": _bigints(grants[e][0] for e in event_ids),
                "points": _bigints(grants[e][1] for e in event_ids),
            },
        ).scalars()
    )
    consumed: dict[int, int] = {}
    for event_id in inserted:
        campaign_id, points = grants[event_id]
        consumed[campaign_id] = consumed.get(campaign_id, 0) + points
        outcomes[event_id] = campaigns[campaign_id].outcome(by_event[event_id], points)
    if consumed:
        ids = sorted(consumed)
        updated = db.session.execute(
            _CONSUME, {"ids": _bigints(ids), "points": _bigints(consumed[i] for i in ids)}
        ).scalars().all()
        if len(updated) != len(ids):  # the rows are locked: only a bug gets here
            raise RuntimeError(f"campaign budgets changed under their lock: {sorted(set(ids) - set(updated))}")
    lost = [event_id for event_id in event_ids if event_id not in inserted]
    if lost:  # another run awarded them after our first read: theirs stands
        outcomes.update(_awarded_before({e: by_event[e] for e in lost}, campaigns))
    return outcomes


def _awarded_before(by_event: dict[int, CampaignInput], campaigns: dict[int, _Terms]) -> dict[int, CampaignOutcome]:
    rows = db.session.execute(_AWARDED, {"ids": _bigints(by_event)}).all()
    outcomes = {}
    for event_id, campaign_id, points in rows:
        terms = campaigns.get(campaign_id) or _load_terms(campaign_id)
        outcomes[event_id] = terms.outcome(by_event[event_id], points)
    return outcomes


def _best_campaigns(eligible: list[CampaignInput], campaigns: dict[int, _Terms]) -> dict[int, tuple[int, int]]:
    """event id -> (campaign id, full extra) of the campaign giving it most (ties: lowest id), in input order."""
    live = [terms for terms in campaigns.values() if terms.status == "live" and terms.has_budget]  # in id order
    best: dict[int, tuple[int, int]] = {}
    for credit in eligible:
        choice: tuple[int, int] | None = None
        for terms in live:
            if terms.applies_to(credit):
                extra = terms.extra_for(credit.base_points)
                if extra > 0 and (choice is None or extra > choice[1]):
                    choice = (terms.id, extra)
        if choice is not None:
            best[credit.event_id] = choice
    return best


def _terms(row: Any) -> _Terms:
    return _Terms(
        id=row.id,
        code=row.code,
        title=row.title,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        scenario_codes=None if row.scenario_codes is None else frozenset(row.scenario_codes),
        districts=None if row.districts is None else frozenset(row.districts),
        multiplier=Decimal(row.multiplier),
        bonus_points=row.bonus_points,
        status=row.status,
        has_budget=row.used_points < row.budget_points if isinstance(row, Campaign) else row.has_budget,
    )


def _load_terms(campaign_id: int) -> _Terms:
    """A campaign an award names that did not overlap the batch (not expected: terms freeze once live)."""
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None  # campaign_awards.campaign_id is a foreign key
    return _terms(campaign)


def _bigints(values: Any) -> str:
    """A bigint[] literal: one parameter for thousands of ids (adapting a list costs ~2 µs an element)."""
    return "{" + ",".join(str(int(value)) for value in values) + "}"


def _decimal_text(value: Decimal) -> str:
    return format(value.normalize(), "f")
