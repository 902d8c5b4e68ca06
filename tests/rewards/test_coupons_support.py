"""Data helpers shared by the offer, coupon and redemption tests (no tests here).

Every helper adds rows in the current session (db_session or committed) and flushes.
"""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from app.extensions import db
from app.ledger.service import Earning, post_earnings
from app.models_base import utcnow

_keys = itertools.count(1)
FAR = datetime(2099, 1, 1, tzinfo=UTC)


def give_points(citizen_id: int, amount: int) -> None:
    """Credit a citizen through the ledger (issuance pool -> citizen)."""
    n = next(_keys)
    post_earnings([Earning(idempotency_key=f"test:earn:{citizen_id}:{n}", citizen_id=citizen_id,
                           scenario_code="metro_trip", amount=amount, event_id=None, details={"test": True})])


def offer_values(**overrides: Any) -> dict[str, Any]:
    now = utcnow()
    values: dict[str, Any] = {
        "kind": "coupon",
        "title_zh": "拿铁立减5元",
        "title_en": "5 yuan off a latte",
        "terms_zh": "每单限用一张。",
        "terms_en": "One per order.",
        "points_price": 100,
        "total_stock": 50,
        "per_citizen_limit": 2,
        "claim_starts_at": now - timedelta(days=1),
        "claim_ends_at": now + timedelta(days=30),
        "use_starts_at": None,
        "use_ends_at": None,
        "valid_days": 30,
        "category": "食",
        "districts": [],
        "points_budget": None,
        "rural_revitalisation": False,
    }
    values.update(overrides)
    return values


def make_offer(merchant_id: int, *, status: str = "live", **overrides: Any) -> int:
    """An offer of the merchant (live by default); returns its id."""
    from rewards.coupons.models import Offer

    values = offer_values(**overrides)
    offer = Offer(merchant_id=merchant_id, remaining=values["total_stock"], budget_used=0, status=status,
                  created_by="staff:0", **values)
    db.session.add(offer)
    db.session.flush()
    return offer.id


def offer_body(**overrides: Any) -> dict[str, Any]:
    """An offer as JSON for POST /merchant/offers."""
    body = offer_values(**overrides)
    body = {k: v for k, v in body.items() if v is not None}
    for name in ("claim_starts_at", "claim_ends_at", "use_starts_at", "use_ends_at"):
        if isinstance(body.get(name), datetime):
            body[name] = body[name].isoformat()
    return body


def idem(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or f"test-{next(_keys)}"}


_SQL_CHECKS = {
    "citizen available balance below zero": """
        SELECT id FROM ledger_accounts
        WHERE kind = 'citizen' AND credits_posted - debits_posted - debits_pending < 0""",
    "a hold resolved more than once": """
        SELECT pending_id FROM ledger_transfers WHERE pending_id IS NOT NULL GROUP BY pending_id HAVING count(*) > 1""",
    "an issued coupon without exactly one open hold": """
        SELECT c.id FROM coupons c
        LEFT JOIN ledger_transfers h ON h.id = c.hold_id AND h.pending
        LEFT JOIN ledger_transfers r ON r.pending_id = c.hold_id
        WHERE c.status = 'issued' AND (h.id IS NULL OR r.id IS NOT NULL)""",
    "a redeemed coupon whose hold was not posted": """
        SELECT c.id FROM coupons c
        LEFT JOIN ledger_transfers r ON r.pending_id = c.hold_id AND r.kind = 'post'
        WHERE c.status = 'redeemed' AND r.id IS NULL""",
    "a cancelled coupon whose hold was not voided": """
        SELECT c.id FROM coupons c
        LEFT JOIN ledger_transfers r ON r.pending_id = c.hold_id AND r.kind = 'void'
        WHERE c.status = 'cancelled' AND r.id IS NULL""",
    "an expired coupon whose hold is still open": """
        SELECT c.id FROM coupons c
        LEFT JOIN ledger_transfers r ON r.pending_id = c.hold_id
        WHERE c.status = 'expired' AND r.id IS NULL""",
    "stock out of step with the coupons and honour exchanges": """
        SELECT o.id FROM offers o
        WHERE o.total_stock - o.remaining
              <> (SELECT count(*) FROM coupons c WHERE c.offer_id = o.id AND c.status <> 'cancelled')
                 + (SELECT count(*) FROM honour_exchanges x WHERE x.offer_id = o.id)""",
    "more than one live redemption of a coupon": """
        SELECT coupon_id FROM coupon_redemptions WHERE undone_at IS NULL GROUP BY coupon_id HAVING count(*) > 1""",
    "merchant open holds differ from its issued coupons": """
        SELECT a.id FROM ledger_accounts a
        WHERE a.kind = 'merchant' AND coalesce((
            SELECT sum(h.amount) FROM ledger_transfers h
            WHERE h.credit_account_id = a.id AND h.pending
              AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = h.id)), 0)
            <> coalesce((SELECT sum(c.points) FROM coupons c
                         WHERE a.code = 'merchant:' || c.merchant_id AND c.status = 'issued'), 0)""",
    "an honour exchange without its spend and its honour": """
        SELECT x.id FROM honour_exchanges x
        LEFT JOIN ledger_transfers t ON t.id = x.transfer_id AND NOT t.pending AND t.amount = x.points
        LEFT JOIN citizen_honours h ON h.citizen_id = x.citizen_id AND h.badge_code = x.badge_code
        WHERE t.id IS NULL OR h.citizen_id IS NULL""",
}


def coupon_invariant_violations() -> list[str]:
    """Our own SQL checks of coupons against the ledger (beside app.ledger.service.check_invariants)."""
    from sqlalchemy import text

    found = []
    for name, sql in _SQL_CHECKS.items():
        rows = db.session.execute(text(sql)).scalars().all()
        if rows:
            found.append(f"{name}: {rows[:10]}")
    return found


def assert_ledger_consistent() -> None:
    from app.ledger.service import check_invariants

    assert coupon_invariant_violations() == []
    assert check_invariants() == []
