"""HTTP routes for campaigns: operators manage them, anyone sees the live ones. Parse, call the service, dump."""
from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from app.auth.guard import BEARER_SECURITY, role_required
from app.pagination import CursorArgs
from rewards.campaigns import service
from rewards.campaigns.models import Campaign
from rewards.campaigns.schemas import (
    CampaignCreateSchema,
    CampaignListArgs,
    CampaignPageSchema,
    CampaignSchema,
    CampaignUpdateSchema,
    PublicCampaignPageSchema,
)

blp = Blueprint(
    "campaigns", __name__, description="Campaigns: time-boxed point multipliers and bonuses with a budget (R5.3)"
)

PUBLIC: list[dict[str, list[str]]] = []


@blp.get("/campaigns")
@blp.doc(security=PUBLIC)
@blp.response(200, PublicCampaignPageSchema)
@blp.arguments(CursorArgs, location="query", as_kwargs=True)
def list_public(cursor: str | None, limit: int) -> dict[str, Any]:
    """Live campaigns that are running or announced, soonest first (e.g. ×2 on 全国低碳日).

    Campaigns do not stack: a credited behaviour gets the one campaign that gives it most, while
    that campaign's budget lasts.
    """
    return service.list_public_campaigns(cursor, limit)


@blp.post("/staff/campaigns")
@blp.doc(security=BEARER_SECURITY)
@blp.response(201, CampaignSchema)
@role_required("operator")
@blp.arguments(CampaignCreateSchema)
def create(body: dict[str, Any]) -> Campaign:
    """Create a campaign (draft, or live at once); 409 campaign_code_taken for a code in use."""
    return service.create_campaign(g.actor.subject, body)


@blp.get("/staff/campaigns")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, CampaignPageSchema)
@role_required("operator")
@blp.arguments(CampaignListArgs, location="query", as_kwargs=True)
def list_all(cursor: str | None, limit: int, status: str | None) -> dict[str, Any]:
    """Every campaign, newest first, with its budget and the points used."""
    return service.list_campaigns(status, cursor, limit)


@blp.get("/staff/campaigns/<id:campaign_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, CampaignSchema)
@role_required("operator")
def get(campaign_id: int) -> Campaign:
    """One campaign."""
    return service.get_campaign(campaign_id)


@blp.patch("/staff/campaigns/<id:campaign_id>")
@blp.doc(security=BEARER_SECURITY)
@blp.response(200, CampaignSchema)
@role_required("operator")
@blp.arguments(CampaignUpdateSchema)
def update(body: dict[str, Any], campaign_id: int) -> Campaign:
    """Pause, resume or end a campaign (at once), retitle it, change its budget; its terms only while draft.

    Statuses: draft → live | ended; live → paused | ended; paused → live | ended; ended is final.
    """
    return service.update_campaign(g.actor.subject, campaign_id, body)
