"""HTTP routes for honours, the yearly report and certificate, and the district leaderboards:
parse, call the service, dump."""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, g
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, citizen_required
from app.extensions import limiter
from app.ledger.account import shanghai_today
from rewards.honours import service
from rewards.honours.certificate import render_certificate
from rewards.honours.leaderboard import leaderboard
from rewards.honours.report import yearly_report
from rewards.honours.schemas import (
    HonoursSchema,
    LeaderboardArgsSchema,
    LeaderboardOptInSchema,
    LeaderboardProfileSchema,
    LeaderboardSchema,
    ReportYearSchema,
)

blp = Blueprint("honours", __name__, description="Badges, levels, yearly reports and certificates, leaderboards")

PNG_SCHEMA = {"type": "string", "format": "binary"}


def _certificate_limit() -> str:
    """Read on every request (per citizen: under @citizen_required, which sets the limit's key)."""
    return current_app.config["RATELIMIT_CERTIFICATE"]


@blp.get("/me/honours")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, HonoursSchema)
@citizen_required
def my_honours() -> dict[str, Any]:
    """My badges (with when), the next ones with progress, my level and progress to the next."""
    return service.my_honours(g.citizen_id)


@blp.get("/me/reports/<int:year>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, ReportYearSchema)
@citizen_required
def my_yearly_report(year: int) -> dict[str, Any]:
    """My low-carbon year (Asia/Shanghai calendar year): CO2e by scenario and month, points, badges."""
    return yearly_report(g.citizen_id, year)


@blp.get("/me/reports/<int:year>/certificate.png")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, PNG_SCHEMA, content_type="image/png", description="The certificate, a 1240×1754 PNG.")
@citizen_required
@limiter.limit(_certificate_limit)
def my_certificate(year: int) -> Response:
    """My yearly certificate: nickname (default 低碳市民), year, CO2e and equivalents, drawn on the server.

    Drawing it costs real CPU, so each citizen may ask RATELIMIT_CERTIFICATE times (default 10 a
    minute; then 429 rate_limited with Retry-After); the response may be cached for 5 minutes.
    """
    report = yearly_report(g.citizen_id, year)
    png = render_certificate(report, service.display_name(g.citizen_id), issued=shanghai_today())
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Content-Disposition"] = f'inline; filename="certificate-{year}.png"'
    return response


@blp.put("/me/leaderboard")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, LeaderboardProfileSchema)
@citizen_required
@blp.arguments(LeaderboardOptInSchema)
def set_my_leaderboard(body: dict[str, Any]) -> dict[str, Any]:
    """Join or leave my district's leaderboards (shown by nickname only); set my nickname."""
    return service.set_leaderboard(
        g.citizen_id, opt_in=body["opt_in"], nickname=body.get("nickname"), nickname_given="nickname" in body
    )


@blp.get("/leaderboards")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, LeaderboardSchema)
@citizen_required
@blp.arguments(LeaderboardArgsSchema, location="query", as_kwargs=True)
def district_leaderboard(district: str | None, period: str, limit: int) -> dict[str, Any]:
    """A district's top citizens by CO2e this month or year: only those who opted in, and my rank."""
    return leaderboard(g.citizen_id, district=district, period=period, limit=limit)
