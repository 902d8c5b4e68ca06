"""Demo merchant for `flask demo load` (never in production): 绿色咖啡 Green Café, two stores, its admin
and a cashier (citizens signed in through the WeChat double), and console staff accounts.

Built through the real services (invitation codes issued and accepted), like the rest of the demo.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from app.auth.guard import Actor
from app.models_base import utcnow
from app.staff import service as staff_service
from rewards.coupons import service as coupons
from rewards.merchants import service

DEMO_MERCHANT = ("绿色咖啡", "Green Café")
DEMO_STORES = (
    ("人民广场店", "huangpu", "上海市黄浦区人民大道100号"),
    ("徐家汇店", "xuhui", "上海市徐汇区漕溪北路200号"),
)
DEMO_MERCHANT_USERS = (("demo-merchant", "merchant_admin", "店长"), ("demo-cashier", "merchant_staff", "收银台1"))
# (kind, title zh/en, price, stock, category, rural revitalisation)
DEMO_OFFERS = (
    ("coupon", "美式咖啡立减5元", "5 yuan off an Americano", 500, 1000, "食", False),
    ("voucher", "自带杯兑换券：中杯拿铁", "Bring-your-own-cup voucher: a medium latte", 1500, 200, "食", False),
    ("coupon", "崇明有机大米 8 折", "20% off Chongming organic rice (乡村振兴)", 300, 500, "食", True),
)
DEMO_HONOUR_BADGE = "green_pioneer"  # a `granted` badge of rewards/honours/badges.yaml
DEMO_STAFF = (("demo-admin", "admin"), ("demo-operator", "operator"), ("demo-reviewer", "reviewer"))


def load_demo_merchant() -> list[str]:
    """Create the demo merchant and accounts (flushes; the caller commits); returns lines to print."""
    lines: list[str] = []
    operator_id = None
    for login, role in DEMO_STAFF:
        password = secrets.token_urlsafe(12)
        staff = staff_service.create_staff(login, login, password, role)
        operator_id = staff.id if role == "operator" else operator_id
        lines.append(f"staff account {login} ({role}), password {password}: POST /api/v1/staff/session")
    operator = Actor(kind="staff", id=operator_id or 0, role="operator")
    merchant = service.create_merchant(operator, *DEMO_MERCHANT)
    stores = [service.create_store(operator, merchant.id, name, district, address)
              for name, district, address in DEMO_STORES]
    from app.demo import demo_person

    for user, role, label in DEMO_MERCHANT_USERS:
        citizen = demo_person(user)  # WeChat, and Suishenban for merchant mode in the H5 build
        store_ids = [store.id for store in stores] if role == "merchant_admin" else [stores[0].id]
        code, _ = service.issue_invitation(operator, merchant.id, role, store_ids, label)
        service.accept_invitation(citizen.id, code)
        lines.append(f"merchant {role} of {DEMO_MERCHANT[1]}: WeChat or Suishenban double user \"{user}\", "
                     "then POST /api/v1/merchant/session")
    lines.extend(_load_demo_offers(operator, merchant.id))
    return lines


def _load_demo_offers(operator: Actor, merchant_id: int) -> list[str]:
    """Three live merchant offers, one of them rural-revitalisation (listed first), and the platform's
    honour offer (荣誉兑换), claimable for a year."""
    now = utcnow()
    lines = []
    for kind, title_zh, title_en, price, stock, category, rural in DEMO_OFFERS:
        offer = coupons.create_offer(operator, {
            "merchant_id": merchant_id, "kind": kind, "title_zh": title_zh, "title_en": title_en,
            "terms_zh": "每人限领2张，领取后30天内到店使用。",
            "terms_en": "Two per person; use in store within 30 days.",
            "points_price": price, "total_stock": stock, "per_citizen_limit": 2,
            "claim_starts_at": now - timedelta(days=1), "claim_ends_at": now + timedelta(days=365),
            "valid_days": 30, "category": category, "districts": [], "points_budget": None,
            "rural_revitalisation": rural,
        })
        coupons.update_offer(operator, offer.id, {"status": "live"})
        lines.append(f"offer {offer.id}: {title_en} ({price} points)")
    honour = coupons.create_offer(operator, {
        "kind": "honour", "badge_code": DEMO_HONOUR_BADGE, "title_zh": "普惠积分换荣誉：绿色先锋",
        "title_en": "Exchange points for an honour: Green pioneer",
        "terms_zh": "每人限兑一次，兑换后即显示在“我的荣誉”。",
        "terms_en": "Once per person; shown in My honours at once.",
        "points_price": 200, "total_stock": 10_000, "per_citizen_limit": 1,
        "claim_starts_at": now - timedelta(days=1), "claim_ends_at": now + timedelta(days=365),
        "category": "用", "districts": [], "points_budget": None, "rural_revitalisation": False,
    })
    coupons.update_offer(operator, honour.id, {"status": "live"})
    lines.append(f"offer {honour.id}: {honour.title_en} (200 points, 荣誉兑换)")
    return lines

