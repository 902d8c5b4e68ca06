"""Monthly usage rows exist only where a monthly cap applies; a monthly cap published mid-month
still counts the month's earlier use (the new row is seeded from daily_usage)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.behaviours.crediting import credit_batch
from app.behaviours.models import MonthlyUsage
from app.extensions import db
from tests.behaviours.conftest import Ev, bind, make_batch, make_partner, outcomes
from tests.conftest import make_citizen


@pytest.fixture
def world(db_session, starter_scenarios):
    partner = make_partner("metro")
    citizen = make_citizen(trajectory_scenarios=("metro_trip",))
    return {"partner": partner, "citizen": citizen, "ref": bind(partner, citizen), "versions": starter_scenarios}


def trips(world, *moments: str) -> list[str]:
    batch_id = make_batch(world["partner"], [Ev(world["ref"], "metro_trip", m, {"distance_km": "5"}) for m in moments])
    credit_batch(batch_id)
    return [event.status for event in outcomes(batch_id)]


def monthly_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(MonthlyUsage))


def test_no_monthly_row_is_written_without_a_monthly_cap(world) -> None:
    assert trips(world, "2026-11-02T01:00:00Z", "2026-11-03T01:00:00Z") == ["credited", "credited"]
    assert monthly_rows() == 0


def test_a_monthly_cap_published_mid_month_counts_the_earlier_use(world) -> None:
    assert trips(world, *[f"2026-11-0{d}T0{h}:00:00Z" for d in (2, 3) for h in range(4)]) == ["credited"] * 8
    assert monthly_rows() == 0

    world["versions"]["metro_trip"].cap_per_month = Decimal(10)  # e.g. a new version with a monthly cap
    db.session.flush()
    later = trips(world, *[f"2026-11-05T0{h}:00:00Z" for h in range(4)], "2026-12-01T01:00:00Z")

    assert later == ["credited", "credited", "capped", "capped", "credited"]  # 8 earlier + 2 = 10 in November
    row = db.session.scalars(select(MonthlyUsage).order_by(MonthlyUsage.month)).first()
    assert (row.quantity, row.grams) == (Decimal(10), 10 * 392)


def test_a_second_batch_adds_to_the_seeded_row_without_seeding_again(world) -> None:
    world["versions"]["metro_trip"].cap_per_month = Decimal(5)
    db.session.flush()

    assert trips(world, "2026-11-02T01:00:00Z", "2026-11-02T02:00:00Z", "2026-11-02T03:00:00Z") == ["credited"] * 3
    assert trips(world, *[f"2026-11-03T0{h}:00:00Z" for h in range(4)]) == ["credited", "credited", "capped",
                                                                             "capped"]
    assert db.session.scalar(select(MonthlyUsage.quantity)) == Decimal(5)
