"""Concurrency on real PostgreSQL: one connection per thread, invariants checked in SQL afterwards."""
from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from datetime import UTC, datetime

from app.errors import AppError
from app.extensions import db
from app.ledger.service import (
    account_balances,
    check_invariants,
    hold,
    post_earnings,
    post_pending,
    transfer,
    void_pending,
)
from tests.conftest import make_citizen
from tests.ledger.conftest import earning, run_in_threads

LATER = datetime(2099, 1, 1, tzinfo=UTC)


def test_sixteen_crediting_jobs_with_overlapping_citizens_and_keys(app, committed):
    citizens = [make_citizen() for _ in range(40)]
    db.session.commit()
    rng = random.Random(20261126)
    # 16 batches over the same 40 citizens and 3 pools; a third of the keys appear in several batches,
    # as when a crediting job is retried while another runs.
    batches = []
    for job in range(16):
        batch = []
        for i in range(300):
            shared = rng.random() < 0.33
            key = f"earn:event:shared:{rng.randrange(600)}" if shared else f"earn:event:{job}:{i}"
            number = int(key.rsplit(":", 1)[1])
            batch.append(
                earning(
                    key, citizens[hash(key) % len(citizens)], 1 + number % 50,
                    ("metro_trip", "bike_share", "recycling")[number % 3],
                )
            )
        batches.append(batch)

    results = run_in_threads(app, 16, lambda job: post_earnings(batches[job]))

    assert [r for r in results if isinstance(r, Exception)] == []
    expected: dict[int, int] = defaultdict(int)
    for e in {e.idempotency_key: e for batch in batches for e in batch}.values():
        expected[e.citizen_id] += e.amount
    db.session.rollback()
    assert {c: account_balances(c).available for c in citizens} == {c: expected[c] for c in citizens}
    assert check_invariants() == []


def test_fifty_spends_of_ten_against_a_balance_of_one_hundred(app, committed):
    alice = make_citizen()
    post_earnings([earning("earn:event:1", alice, 100)])
    db.session.commit()

    results = run_in_threads(
        app, 50, lambda i: transfer(f"spend:{i}", f"citizen:{alice}", "merchant:1", 10, "spend").id
    )

    refused = [r for r in results if isinstance(r, AppError)]
    assert len(refused) == 40 and {r.code for r in refused} == {"insufficient_points"}
    assert len([r for r in results if not isinstance(r, Exception)]) == 10
    db.session.rollback()
    assert account_balances(alice).available == 0
    assert check_invariants() == []


def test_fifty_holds_of_ten_against_a_balance_of_one_hundred(app, committed):
    alice = make_citizen()
    post_earnings([earning("earn:event:1", alice, 100)])
    db.session.commit()

    results = run_in_threads(
        app, 50, lambda i: hold(f"claim:{i}", alice, "merchant:1", 10, timeout_at=LATER).id
    )

    assert len([r for r in results if not isinstance(r, Exception)]) == 10
    assert {r.code for r in results if isinstance(r, Exception)} == {"insufficient_points"}
    db.session.rollback()
    assert (account_balances(alice).available, account_balances(alice).held) == (0, 100)
    assert check_invariants() == []


def test_concurrent_posts_and_voids_of_one_hold_resolve_it_once(app, committed):
    alice = make_citizen()
    post_earnings([earning("earn:event:1", alice, 100)])
    held_id = hold("claim:1", alice, "merchant:1", 60, timeout_at=LATER).id
    db.session.commit()

    def resolve(i: int) -> str:
        (post_pending if i % 2 else void_pending)(held_id, f"resolve:{i}")
        return "post" if i % 2 else "void"

    results = run_in_threads(app, 20, resolve)

    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert {r.code for r in results if isinstance(r, Exception)} == {"hold_already_resolved"}
    db.session.rollback()
    balances = account_balances(alice)
    assert (balances.available, balances.held) == ((40, 0) if winners == ["post"] else (100, 0))
    assert check_invariants() == []


def test_earning_while_spending_on_the_same_accounts(app, committed):
    """Earnings (citizen, then pool) and spends (citizen, then merchant) lock in one global order."""
    citizens = [make_citizen() for _ in range(5)]
    post_earnings([earning(f"earn:seed:{c}", c, 50) for c in citizens])
    db.session.commit()

    def work(i: int) -> None:
        if i % 2:
            post_earnings([earning(f"earn:{i}:{c}", c, 5) for c in reversed(citizens)])
        else:
            for c in citizens:
                with contextlib.suppress(AppError):  # some run dry: that is part of the test
                    transfer(f"spend:{i}:{c}", f"citizen:{c}", "merchant:1", 7, "spend")

    results = run_in_threads(app, 16, work)

    assert [r for r in results if isinstance(r, Exception)] == []
    db.session.rollback()
    assert check_invariants() == []
