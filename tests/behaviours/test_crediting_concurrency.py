"""Two batches for the same citizen credited at once, each on its own connection, respect the cap exactly."""
from __future__ import annotations

import threading

from sqlalchemy import func, select, text

from app import jobs
from app.behaviours.models import InboundEvent
from app.extensions import db
from app.ledger.models import LedgerTransfer
from app.ledger.service import check_invariants
from tests.behaviours.conftest import Ev, balance, bind, make_batch, make_partner
from tests.conftest import make_citizen


def test_concurrent_batches_for_one_citizen_respect_the_daily_cap(app, loaded_scenarios) -> None:
    partner = make_partner("metro")
    citizen = make_citizen(trajectory_scenarios=("metro_trip",))
    ref = bind(partner, citizen)
    others = [make_citizen(trajectory_scenarios=("metro_trip",)) for _ in range(3)]
    other_refs = [bind(partner, other) for other in others]
    batches = []
    for hour in (1, 2):  # 8 trips each for the same citizen on the same Shanghai day, plus bystanders
        events = [Ev(ref, "metro_trip", f"2026-11-26T0{hour}:{minute:02d}:00Z", {"distance_km": "10"})
                  for minute in range(8)]
        events += [Ev(r, "metro_trip", f"2026-11-26T0{hour}:30:00Z", {"distance_km": "3"}) for r in other_refs]
        batches.append(make_batch(partner, events))
    db.session.commit()

    errors = credit_concurrently(app, batches)
    assert errors == []
    db.session.expire_all()
    statuses = dict(
        db.session.execute(
            select(InboundEvent.status, func.count()).where(InboundEvent.citizen_id == citizen)
            .group_by(InboundEvent.status)
        ).all()
    )
    assert statuses == {"credited": 10, "capped": 6}
    usage = db.session.execute(
        text("SELECT quantity, events, grams, points FROM daily_usage WHERE citizen_id = :c"), {"c": citizen}
    ).one()
    assert tuple(usage) == (10, 10, 7840, 7840)
    assert balance(citizen) == 7840
    assert all(balance(other) == 2 * 235 for other in others)
    assert db.session.scalar(select(func.count()).select_from(LedgerTransfer)) == 10 + 2 * len(others)
    assert check_invariants() == []


def credit_concurrently(app, batches) -> list[BaseException]:
    barrier = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def credit(batch_id) -> None:
        try:
            with app.app_context():
                barrier.wait()
                jobs.credit_batch(str(batch_id))
        except BaseException as error:  # surfaced by the caller
            errors.append(error)

    threads = [threading.Thread(target=credit, args=(batch_id,)) for batch_id in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_batches_claiming_the_same_items_in_opposite_orders_credit_each_item_once(app, loaded_scenarios) -> None:
    partner = make_partner("einvoice")
    numbers = [f"{n:020d}" for n in range(1, 31)]
    batches = []
    for order in (numbers, numbers[::-1]):
        citizen = make_citizen()
        ref = bind(partner, citizen)
        events = [
            Ev(ref, "paperless", f"2026-11-26T0{i % 9}:{i % 60:02d}:{i // 60 % 60:02d}Z",
               {"item_type": "e_invoice", "document_number": number}, item_key=f"einv:{number}")
            for i, number in enumerate(order)
        ]
        batches.append(make_batch(partner, events))
    db.session.commit()

    assert credit_concurrently(app, batches) == []  # no unique violation
    db.session.expire_all()
    credited = db.session.execute(
        select(InboundEvent.item_key, func.count())
        .where(InboundEvent.status == "credited")
        .group_by(InboundEvent.item_key)
    ).all()
    duplicates = db.session.scalar(
        select(func.count()).select_from(InboundEvent).where(InboundEvent.status == "duplicate_item")
    )
    capped = db.session.scalar(select(func.count()).select_from(InboundEvent).where(InboundEvent.status == "capped"))
    assert all(count == 1 for _, count in credited)
    assert len(credited) + duplicates + capped == 2 * len(numbers) and len(credited) + capped == len(numbers)
    assert check_invariants() == []
