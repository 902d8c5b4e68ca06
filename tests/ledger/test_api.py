"""GET /api/v1/me/account and /api/v1/me/ledger."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine

from app.behaviours.models import DailyUsage
from app.extensions import db
from app.ledger.service import hold, post_earnings, transfer
from tests.conftest import bearer_for, make_citizen
from tests.ledger.conftest import earning, make_scenario

# 16:30Z on 26 November is 00:30 on 27 November in Shanghai.
CLOCK = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
LATER = datetime(2099, 1, 1, tzinfo=UTC)


def usage(citizen_id: int, scenario_id: int, day: date, grams: int, points: int | None = None) -> None:
    db.session.add(
        DailyUsage(citizen_id=citizen_id, scenario_id=scenario_id, day=day, events=1, grams=grams,
                   points=grams if points is None else points)
    )
    db.session.flush()


# ---- /me/account --------------------------------------------------------------------------------


def test_the_account_needs_a_citizen_token(client, db_session):
    assert client.get("/api/v1/me/account").status_code == 401
    assert client.get("/api/v1/me/ledger").status_code == 401


def test_a_new_citizen_sees_zeros_and_thirty_empty_days(client, citizen_id, citizen_headers):
    body = client.get("/api/v1/me/account", headers=citizen_headers).get_json()

    assert body["points"] == {"available": 0, "held": 0, "earned_total": 0, "spent_total": 0, "debt": 0}
    assert body["expiring_soon"] == {"points": 0, "expires_on": None}
    assert body["co2e_grams"] == {"today": 0, "month": 0, "year": 0, "all_time": 0}
    assert body["by_scenario"] == []
    assert len(body["daily"]) == 30 and {d["grams"] for d in body["daily"]} == {0}
    assert body["equivalents"]["trees"] == "0.0" and body["equivalents"]["car_km"] == "0.0"


def test_the_account_counts_shanghai_days_months_and_years(client, db_session):
    alice, bob = make_citizen(), make_citizen()
    metro = make_scenario("metro_trip", "地铁出行", "Metro trip")
    bike = make_scenario("bike_share", "共享单车", "Bike-share ride")
    usage(alice, metro, date(2026, 11, 27), 800)  # Shanghai "today" at 16:30Z on the 26th
    usage(alice, bike, date(2026, 11, 27), 93)
    usage(alice, metro, date(2026, 11, 26), 1_000)  # yesterday in Shanghai, although still "today" in UTC
    usage(alice, bike, date(2026, 11, 1), 2_000)  # this month
    usage(alice, metro, date(2026, 10, 28), 4_000)  # this year, just outside the 30 days
    usage(alice, metro, date(2025, 12, 31), 30_000)  # last year
    usage(bob, metro, date(2026, 11, 27), 99_999)  # someone else
    post_earnings([earning("earn:event:1", alice, 300), earning("earn:event:2", alice, 200)])
    hold("claim:1", alice, "merchant:1", 50, timeout_at=LATER)
    transfer("spend:1", f"citizen:{alice}", "merchant:1", 20, "spend")

    with time_machine.travel(CLOCK, tick=False):
        body = client.get("/api/v1/me/account", headers=bearer_for(alice)).get_json()

    assert body["points"] == {"available": 430, "held": 50, "earned_total": 500, "spent_total": 20, "debt": 0}
    assert body["co2e_grams"] == {"today": 893, "month": 3_893, "year": 7_893, "all_time": 37_893}
    assert body["by_scenario"] == [
        {"scenario_code": "metro_trip", "name": {"zh": "地铁出行", "en": "Metro trip"}, "grams": 35_800,
         "points": 35_800},
        {"scenario_code": "bike_share", "name": {"zh": "共享单车", "en": "Bike-share ride"}, "grams": 2_093,
         "points": 2_093},
    ]
    daily = body["daily"]
    assert [d["date"] for d in (daily[0], daily[-1])] == ["2026-10-29", "2026-11-27"]
    assert daily[-1] == {"date": "2026-11-27", "grams": 893, "points": 893}
    assert daily[-2] == {"date": "2026-11-26", "grams": 1_000, "points": 1_000}
    assert daily[3] == {"date": "2026-11-01", "grams": 2_000, "points": 2_000}
    assert sum(d["grams"] for d in daily) == 3_893
    # 37,893 g / 17,900 g per tree-year = 2.116…; / 160 g per km = 236.83…
    assert body["equivalents"]["trees"] == "2.1"
    assert body["equivalents"]["car_km"] == "236.8"
    assert body["equivalents"]["sources"]["trees"]["grams_per_unit"] == 17_900
    assert body["equivalents"]["sources"]["car_km"]["grams_per_unit"] == 160


def test_one_second_before_shanghai_midnight_is_still_yesterday(client, db_session):
    alice = make_citizen()
    metro = make_scenario("metro_trip", "地铁出行", "Metro trip")
    usage(alice, metro, date(2026, 11, 27), 800)

    with time_machine.travel(datetime(2026, 11, 26, 15, 59, 59, tzinfo=UTC), tick=False):
        before = client.get("/api/v1/me/account", headers=bearer_for(alice)).get_json()
    with time_machine.travel(datetime(2026, 11, 26, 16, 0, 0, tzinfo=UTC), tick=False):
        after = client.get("/api/v1/me/account", headers=bearer_for(alice)).get_json()

    assert before["co2e_grams"]["today"] == 0 and before["daily"][-1]["date"] == "2026-11-26"
    assert after["co2e_grams"]["today"] == 800 and after["daily"][-1]["date"] == "2026-11-27"


# ---- /me/ledger ---------------------------------------------------------------------------------


def test_the_ledger_explains_each_entry(client, db_session):
    alice = make_citizen()
    explanation = {
        "scenario": "metro_trip", "methodology": {"code": "SHCI-P-METRO", "version": 1},
        "activity": {"distance_km": "10.57"}, "formula": "distance_km * net_g_per_km",
        "factors": {"net_g_per_km": "78.4"}, "cap_applied": None, "campaign": None,
    }
    post_earnings([earning("earn:event:1", alice, 828, **{k: v for k, v in explanation.items() if k != "scenario"})])
    held = hold("claim:1", alice, "merchant:1", 100, timeout_at=LATER, details={"offer": "coffee"})

    items = client.get("/api/v1/me/ledger", headers=bearer_for(alice)).get_json()["items"]

    by_kind = {item["kind"]: item for item in items}
    assert by_kind["earn"]["amount"] == 828 and by_kind["earn"]["direction"] == "in"
    assert by_kind["earn"]["status"] == "posted"
    assert by_kind["earn"]["explanation"] == explanation
    assert by_kind["hold"] == {
        "id": str(held.id), "kind": "hold", "amount": -100, "direction": "out", "status": "pending",
        "created_at": by_kind["hold"]["created_at"], "timeout_at": "2099-01-01T00:00:00+00:00",
        "explanation": {"offer": "coffee"},
    }


def test_the_ledger_pages_newest_first_without_gaps_or_duplicates(client, db_session):
    alice, bob = make_citizen(), make_citizen()
    # One transaction: every transfer has the same created_at, so the id must break the ties.
    post_earnings([earning(f"earn:event:{i}", alice, 1 + i) for i in range(47)])
    post_earnings([earning(f"earn:event:bob:{i}", bob, 5) for i in range(10)])

    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/me/ledger", query_string=query, headers=bearer_for(alice)).get_json()
        seen.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert pages == 5
    assert len(seen) == 47 and len({item["id"] for item in seen}) == 47
    assert sorted(item["amount"] for item in seen) == list(range(1, 48))  # none of bob's
    keys = [(item["created_at"], item["id"]) for item in seen]
    assert keys == sorted(keys, reverse=True)


def test_a_full_last_page_has_no_next_cursor(client, db_session):
    alice = make_citizen()
    post_earnings([earning(f"earn:event:{i}", alice, 1) for i in range(5)])
    body = client.get("/api/v1/me/ledger?limit=5", headers=bearer_for(alice)).get_json()
    assert len(body["items"]) == 5 and body["next_cursor"] is None


def test_another_citizens_entries_are_never_shown(client, db_session):
    alice, bob = make_citizen(), make_citizen()
    post_earnings([earning("earn:event:bob", bob, 5)])
    transfer("adjust:bob", "adjustment:ops", f"citizen:{bob}", 3, "adjust")
    assert client.get("/api/v1/me/ledger", headers=bearer_for(alice)).get_json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!!",
        "WyJ4Il0",  # ["x"]: one value where two are expected
        "WyJ4IiwieSJd",  # ["x","y"]: not a time and an id
        "WzEsMl0",  # [1,2]
        "WyIyMDI2LTExLTI2VDE2OjMwOjAwIiwiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIl0",  # naive time
    ],
)
def test_a_bad_cursor_is_a_400(client, citizen_headers, cursor):
    response = client.get("/api/v1/me/ledger", query_string={"cursor": cursor}, headers=citizen_headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("query", [{"limit": 101}, {"limit": 0}, {"limit": "ten"}, {"page": 2}])
def test_bad_paging_arguments_are_a_400(client, citizen_headers, query):
    response = client.get("/api/v1/me/ledger", query_string=query, headers=citizen_headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"


def test_the_token_is_checked_before_the_arguments(client, db_session):
    assert client.get("/api/v1/me/ledger?limit=101").status_code == 401


def test_the_routes_are_documented_with_bearer_security(client, db_session):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/me/account", "/api/v1/me/ledger"):
        operation = spec["paths"][path]["get"]
        assert operation["security"] == [{"bearerAuth": []}]
        assert "200" in operation["responses"]
    assert {"CarbonAccount", "LedgerPage", "LedgerEntry"} <= set(spec["components"]["schemas"])
