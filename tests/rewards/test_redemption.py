"""Redemption at checkout: validation, exactly once, idempotent replay, undo, lists and the settlement CSV."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta

import time_machine
from sqlalchemy import select, text

from app.audit.models import AuditEntry
from app.extensions import db
from app.ledger.service import account_balances
from app.models_base import utcnow
from rewards.coupons.models import Coupon, Redemption
from rewards.merchants.service import merchant_account_code
from tests.conftest import bearer_as, bearer_for, make_citizen
from tests.rewards.factories import make_merchant, make_merchant_staff
from tests.rewards.test_coupons_support import assert_ledger_consistent, give_points, idem, make_offer


@dataclass
class Shop:
    merchant_id: int
    stores: list[int]
    cashier_id: int  # merchant_staff at the first store only
    admin_id: int  # merchant_admin at every store
    offer_id: int

    @property
    def cashier(self) -> dict[str, str]:
        return bearer_as(f"merchant_staff:{self.cashier_id}", "merchant_staff")

    @property
    def admin(self) -> dict[str, str]:
        return bearer_as(f"merchant_staff:{self.admin_id}", "merchant_admin")


def _shop(name: str = "Green Café", **offer: object) -> Shop:
    merchant_id, stores = make_merchant(name_en=name)
    cashier_id, _ = make_merchant_staff(merchant_id, stores[:1])
    admin_id, _ = make_merchant_staff(merchant_id, role="merchant_admin")
    return Shop(merchant_id, stores, cashier_id, admin_id, make_offer(merchant_id, **{"points_price": 100, **offer}))


def _claim(client, citizen_id: int, offer_id: int) -> dict:
    response = client.post(f"/api/v1/offers/{offer_id}/claim", headers={**bearer_for(citizen_id), **idem()})
    assert response.status_code == 201, response.json
    return response.json


def _qr(client, citizen_id: int, coupon_id: int) -> dict:
    response = client.get(f"/api/v1/me/coupons/{coupon_id}/qr", headers=bearer_for(citizen_id))
    assert response.status_code == 200, response.json
    return response.json


def _redeem(client, headers: dict[str, str], store_id: int, key: str | None = None, **code: str):
    return client.post("/api/v1/merchant/redemptions", json={"store_id": store_id, **code},
                       headers={**headers, **idem(key)})


def _merchant_posted(merchant_id: int) -> int:
    return db.session.scalar(text("SELECT credits_posted FROM ledger_accounts WHERE code = :c"),
                             {"c": merchant_account_code(merchant_id)})


def _citizen(points: int = 1000) -> int:
    citizen_id = make_citizen()
    give_points(citizen_id, points)
    return citizen_id


def test_a_scanned_token_redeems_the_coupon_once_and_posts_the_hold(client, db_session):
    shop = _shop()
    citizen_id = _citizen(1000)
    db_session.commit()
    coupon = _claim(client, citizen_id, shop.offer_id)
    qr = _qr(client, citizen_id, coupon["id"])

    done = _redeem(client, shop.cashier, shop.stores[0], key="till-1", token=qr["token"])

    assert done.status_code == 201, done.json
    assert (done.json["coupon_id"], done.json["store_id"], done.json["staff_id"], done.json["points"]) == (
        coupon["id"], shop.stores[0], shop.cashier_id, 100)
    balances = account_balances(citizen_id)
    assert (balances.available, balances.held, balances.spent_total) == (900, 0, 100)
    assert _merchant_posted(shop.merchant_id) == 100
    assert db.session.get(Coupon, coupon["id"], populate_existing=True).status == "redeemed"
    mine = client.get(f"/api/v1/me/coupons/{coupon['id']}", headers=bearer_for(citizen_id)).json
    assert mine["status"] == "redeemed"

    replay = _redeem(client, shop.cashier, shop.stores[0], key="till-1", token=qr["token"])
    assert replay.status_code == 201 and replay.json == done.json
    assert replay.headers.get("Idempotent-Replayed") == "true"
    second = _redeem(client, shop.admin, shop.stores[1], token=qr["token"])
    assert (second.status_code, second.json["error"]["code"]) == (409, "coupon_already_used")
    audited = db.session.execute(  # once: neither the replay nor the refusal records anything
        select(AuditEntry.actor_type, AuditEntry.actor_id, AuditEntry.object_id, AuditEntry.details)
        .where(AuditEntry.action == "coupon.redeemed")).all()
    assert [tuple(row) for row in audited] == [("merchant_staff", str(shop.cashier_id), str(done.json["id"]),
                                                 {"coupon_id": coupon["id"], "points": 100,
                                                  "store_id": shop.stores[0]})]
    assert db.session.scalar(select(db.func.count()).select_from(Redemption)) == 1
    assert _merchant_posted(shop.merchant_id) == 100
    qr_again = client.get(f"/api/v1/me/coupons/{coupon['id']}/qr", headers=bearer_for(citizen_id))
    assert (qr_again.status_code, qr_again.json["error"]["code"]) == (409, "coupon_already_used")
    assert_ledger_consistent()


def test_a_typed_short_code_redeems_too(client, db_session):
    shop = _shop()
    citizen_id = _citizen()
    db_session.commit()
    coupon = _claim(client, citizen_id, shop.offer_id)
    qr = _qr(client, citizen_id, coupon["id"])

    done = _redeem(client, shop.cashier, shop.stores[0], short_code=qr["short_code"])

    assert done.status_code == 201 and done.json["coupon_id"] == coupon["id"]
    other = _shop("Other Shop")
    db_session.commit()
    # Another merchant's staff typing the same digits look in their own namespace: nothing there.
    foreign = _redeem(client, other.cashier, other.stores[0], short_code=qr["short_code"])
    assert (foreign.status_code, foreign.json["error"]["code"]) == (409, "token_expired")


def test_redemption_refusals(client, db_session):
    shop = _shop()
    other = _shop("Other Shop")
    citizen_id = _citizen(1000)
    db_session.commit()
    coupon = _claim(client, citizen_id, shop.offer_id)
    qr = _qr(client, citizen_id, coupon["id"])
    token = qr["token"]

    cases = [
        (other.cashier, other.stores[0], {"token": token}, 403, "wrong_merchant"),
        (shop.cashier, shop.stores[1], {"token": token}, 403, "store_not_allowed"),  # not her store
        (shop.admin, other.stores[0], {"token": token}, 403, "store_not_allowed"),  # another merchant's store
        (shop.cashier, shop.stores[0], {"token": token[:-2] + "xx"}, 400, "invalid_coupon_token"),
        (shop.cashier, shop.stores[0], {"short_code": "00000000"}, 409, "token_expired"),
        (shop.cashier, shop.stores[0], {"token": token, "short_code": qr["short_code"]}, 400, "validation_error"),
        (shop.cashier, shop.stores[0], {}, 400, "validation_error"),
        (shop.cashier, shop.stores[0], {"short_code": "12ab"}, 400, "validation_error"),
        (bearer_for(citizen_id), shop.stores[0], {"token": token}, 403, "forbidden"),
    ]
    for headers, store_id, code, status, error in cases:
        response = _redeem(client, headers, store_id, **code)
        assert (response.status_code, response.json["error"]["code"]) == (status, error), error
    no_key = client.post("/api/v1/merchant/redemptions", json={"store_id": shop.stores[0], "token": token},
                         headers=shop.cashier)
    assert (no_key.status_code, no_key.json["error"]["code"]) == (400, "idempotency_key_required")
    assert db.session.get(Coupon, coupon["id"], populate_existing=True).status == "issued"
    assert account_balances(citizen_id).held == 100

    cancelled = _claim(client, citizen_id, shop.offer_id)
    cancelled_qr = _qr(client, citizen_id, cancelled["id"])
    client.post(f"/api/v1/me/coupons/{cancelled['id']}/cancel", headers=bearer_for(citizen_id))
    refused = _redeem(client, shop.cashier, shop.stores[0], token=cancelled_qr["token"])
    assert (refused.status_code, refused.json["error"]["code"]) == (409, "coupon_cancelled")


def test_a_token_older_than_sixty_seconds_is_refused(client, db_session):
    shop = _shop()
    citizen_id = _citizen()
    db_session.commit()
    coupon = _claim(client, citizen_id, shop.offer_id)
    start = utcnow()
    with time_machine.travel(start, tick=False):
        qr = _qr(client, citizen_id, coupon["id"])
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        for code in ({"token": qr["token"]}, {"short_code": qr["short_code"]}):
            stale = _redeem(client, shop.cashier, shop.stores[0], **code)
            assert (stale.status_code, stale.json["error"]["code"]) == (409, "token_expired"), code
    with time_machine.travel(start + timedelta(seconds=58), tick=False):
        assert _redeem(client, shop.cashier, shop.stores[0], token=qr["token"]).status_code == 201


def test_an_expired_coupon_cannot_be_redeemed_even_with_a_fresh_token(client, db_session):
    shop = _shop(valid_days=1)
    citizen_id = _citizen()
    db_session.commit()
    coupon = _claim(client, citizen_id, shop.offer_id)
    end = db.session.get(Coupon, coupon["id"]).expires_at
    with time_machine.travel(end - timedelta(seconds=20), tick=False):
        qr = _qr(client, citizen_id, coupon["id"])
    with time_machine.travel(end + timedelta(seconds=10), tick=False):
        late = _redeem(client, shop.cashier, shop.stores[0], token=qr["token"])
        assert (late.status_code, late.json["error"]["code"]) == (409, "coupon_expired")
        shown = client.get(f"/api/v1/me/coupons/{coupon['id']}/qr", headers=bearer_for(citizen_id))
        assert shown.json["error"]["code"] == "coupon_expired"


def test_a_merchant_admin_undoes_a_redemption_within_thirty_minutes(client, db_session):
    shop = _shop()
    other = _shop("Other Shop")
    citizen_id = _citizen(1000)
    db_session.commit()
    coupon = _claim(client, citizen_id, shop.offer_id)
    start = utcnow()
    with time_machine.travel(start, tick=False):
        done = _redeem(client, shop.cashier, shop.stores[0],
                       token=_qr(client, citizen_id, coupon["id"])["token"]).json

    with time_machine.travel(start + timedelta(minutes=29), tick=False):
        url = f"/api/v1/merchant/redemptions/{done['id']}/undo"
        assert client.post(url, headers=shop.cashier).status_code == 403  # staff may not undo
        assert client.post(url, headers=other.admin).json["error"]["code"] == "redemption_not_found"
        undone = client.post(url, headers=shop.admin)
        assert undone.status_code == 200, undone.json
        assert undone.json["undone_by_staff_id"] == shop.admin_id and undone.json["undone_at"] is not None
        again = client.post(url, headers=shop.admin)
        assert (again.status_code, again.json["error"]["code"]) == (409, "redemption_already_undone")

    # The posted transfer stays; a compensating transfer returns the points and a new hold re-reserves them.
    balances = account_balances(citizen_id)
    assert (balances.available, balances.held) == (900, 100)
    assert _merchant_posted(shop.merchant_id) == 100
    merchant_debits = db.session.scalar(text("SELECT debits_posted FROM ledger_accounts WHERE code = :c"),
                                        {"c": merchant_account_code(shop.merchant_id)})
    assert merchant_debits == 100
    stored = db.session.get(Coupon, coupon["id"], populate_existing=True)
    assert stored.status == "issued" and stored.hold_id != db.session.get(Redemption, done["id"]).hold_id
    audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "coupon.redemption_undone")).one()
    assert (audit.actor_type, audit.actor_id, audit.object_id) == ("merchant_staff", str(shop.admin_id),
                                                                   str(done["id"]))
    assert_ledger_consistent()

    # The coupon can be redeemed again, and that one cannot be undone after 30 minutes.
    with time_machine.travel(start + timedelta(minutes=40), tick=False):
        redone = _redeem(client, shop.cashier, shop.stores[0], token=_qr(client, citizen_id, coupon["id"])["token"])
        assert redone.status_code == 201
    with time_machine.travel(start + timedelta(minutes=71), tick=False):
        late = client.post(f"/api/v1/merchant/redemptions/{redone.json['id']}/undo", headers=shop.admin)
        assert (late.status_code, late.json["error"]["code"]) == (409, "undo_window_passed")
    assert (account_balances(citizen_id).available, account_balances(citizen_id).held) == (900, 0)
    assert_ledger_consistent()


def test_the_merchant_lists_its_redemptions_by_store_and_day(client, db_session):
    shop = _shop(per_citizen_limit=5)
    other = _shop("Other Shop")
    citizen_id = _citizen(1000)
    db_session.commit()
    done = []
    for store in (shop.stores[0], shop.stores[1], shop.stores[1]):
        coupon = _claim(client, citizen_id, shop.offer_id)
        done.append(_redeem(client, shop.admin, store, token=_qr(client, citizen_id, coupon["id"])["token"]).json)

    listed = client.get("/api/v1/merchant/redemptions?limit=2", headers=shop.cashier).json
    rest = client.get(f"/api/v1/merchant/redemptions?limit=2&cursor={listed['next_cursor']}",
                      headers=shop.cashier).json
    assert [r["id"] for r in listed["items"] + rest["items"]] == [d["id"] for d in reversed(done)]
    by_store = client.get(f"/api/v1/merchant/redemptions?store={shop.stores[1]}", headers=shop.admin).json
    assert [r["id"] for r in by_store["items"]] == [done[2]["id"], done[1]["id"]]
    today = utcnow().astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).date()
    assert len(client.get(f"/api/v1/merchant/redemptions?date={today}", headers=shop.admin).json["items"]) == 3
    before = today - timedelta(days=1)
    assert client.get(f"/api/v1/merchant/redemptions?date={before}", headers=shop.admin).json["items"] == []
    assert client.get("/api/v1/merchant/redemptions", headers=other.admin).json["items"] == []
    assert client.get("/api/v1/merchant/redemptions?date=yesterday", headers=shop.admin).status_code == 400
    assert client.get("/api/v1/merchant/redemptions", headers=bearer_for(citizen_id)).status_code == 403


def test_the_settlement_csv_lists_the_months_redemptions_and_undos_with_totals(client, db_session):
    shop = _shop(per_citizen_limit=5, title_zh="=HYPERLINK(\"x\")")
    citizen_id = _citizen(1000)
    db_session.commit()
    coupons = [_claim(client, citizen_id, shop.offer_id) for _ in range(3)]
    done = [_redeem(client, shop.cashier, shop.stores[0], token=_qr(client, citizen_id, c["id"])["token"]).json
            for c in coupons]
    assert client.post(f"/api/v1/merchant/redemptions/{done[1]['id']}/undo", headers=shop.admin).status_code == 200
    month = utcnow().astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")

    response = client.get(f"/api/v1/merchant/settlement?month={month}", headers=shop.admin)

    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f"settlement-{month}.csv" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["event", "at_shanghai", "redemption_id"]
    events = [(r[0], int(r[2]), int(r[-1])) for r in body if r and r[0] in ("redemption", "undo")]
    assert sorted(events) == sorted([("redemption", d["id"], 100) for d in done] + [("undo", done[1]["id"], -100)])
    totals = {r[0]: r for r in body if r and r[0].startswith(("total", "net"))}
    assert (totals["total_redemptions"][2], totals["total_redemptions"][-1]) == ("3", "300")
    assert (totals["total_undos"][2], totals["total_undos"][-1]) == ("1", "-100")
    assert totals["net_points"][-1] == "200"
    assert all(r[5].startswith("'=") for r in body if r and r[0] in ("redemption", "undo"))  # no formula injection
    assert body[0][1].endswith("+08:00")

    assert client.get(f"/api/v1/merchant/settlement?month={month}", headers=shop.cashier).status_code == 403
    for bad in ("2026-13", "26-01", "", "2026-1"):
        assert client.get(f"/api/v1/merchant/settlement?month={bad}", headers=shop.admin).status_code == 400
    empty = client.get("/api/v1/merchant/settlement?month=2030-01", headers=shop.admin).get_data(as_text=True)
    assert "total_redemptions,2030-01,0" in empty


def test_guessing_short_codes_is_cut_off(client, db_session):
    shop = _shop()
    db_session.commit()
    answers = [_redeem(client, shop.cashier, shop.stores[0], short_code=f"{n:08d}").status_code for n in range(22)]
    assert answers[:20] == [409] * 20 and answers[-1] == 429


def test_undoing_a_redemption_after_the_coupon_ended_returns_the_points_and_expires_it(client, db_session):
    shop = _shop(valid_days=1)
    citizen_id = _citizen(1000)
    db_session.commit()
    coupon = _claim(client, citizen_id, shop.offer_id)
    end = db.session.get(Coupon, coupon["id"]).expires_at
    with time_machine.travel(end - timedelta(minutes=5), tick=False):
        done = _redeem(client, shop.cashier, shop.stores[0], token=_qr(client, citizen_id, coupon["id"])["token"])
        assert done.status_code == 201
    with time_machine.travel(end + timedelta(minutes=5), tick=False):
        undone = client.post(f"/api/v1/merchant/redemptions/{done.json['id']}/undo", headers=shop.admin)
        assert undone.status_code == 200

    assert db.session.get(Coupon, coupon["id"], populate_existing=True).status == "expired"
    assert (account_balances(citizen_id).available, account_balances(citizen_id).held) == (1000, 0)
    assert_ledger_consistent()
