"""A Hypothesis state machine over earnings in two years, spends, holds, expiry and fraud reversal.

After every step check_invariants() is empty (lots = balances, allocations = holds, debts >= 0, ...)
and each citizen's available points, held points and debt equal a plain Python model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import time_machine
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from app.errors import AppError
from app.extensions import db
from app.ledger.expiry import expire_due_lots
from app.ledger.reversal import outstanding_debt, reverse_credit
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
from tests.ledger.conftest import earning

LATER = datetime(2099, 1, 1, tzinfo=UTC)
YEARS = {2025: datetime(2025, 6, 1, 4, tzinfo=UTC), 2026: datetime(2026, 6, 1, 4, tzinfo=UTC)}


@dataclass
class Model:
    available: dict[int, int]
    held: dict[int, int]
    debt: dict[int, int]
    open_holds: dict[object, tuple[int, int]] = field(default_factory=dict)
    credits: list[tuple[object, int, int]] = field(default_factory=list)  # (transfer id, citizen, amount)


def test_lots_expiry_and_reversal_keep_the_invariants_under_any_sequence(db_session):
    citizens = [make_citizen() for _ in range(2)]

    class LotsMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.savepoint = db.session.begin_nested()
            zero = {c: 0 for c in citizens}
            self.model = Model(available=dict(zero), held=dict(zero), debt=dict(zero))
            self.steps = 0
            self.expired = False  # once the 2025 lots have expired, later earnings are in 2026 only

        def teardown(self) -> None:
            self.savepoint.rollback()

        def _key(self, prefix: str) -> str:
            self.steps += 1
            return f"{prefix}:{self.steps}"

        @rule(citizen=st.sampled_from(range(2)), amount=st.integers(1, 60), year=st.sampled_from([2025, 2026]))
        def earn(self, citizen, amount, year):
            c = citizens[citizen]
            key = self._key("earn")
            with time_machine.travel(YEARS[2026 if self.expired else year], tick=False):
                ids = post_earnings([earning(key, c, amount)])
            repaid = min(amount, self.model.debt[c])
            self.model.debt[c] -= repaid
            self.model.available[c] += amount - repaid
            self.model.credits.append((ids[key], c, amount))

        @rule(citizen=st.sampled_from(range(2)), amount=st.integers(1, 80))
        def spend(self, citizen, amount):
            c = citizens[citizen]
            try:
                transfer(self._key("spend"), f"citizen:{c}", "merchant:1", amount, "spend")
            except AppError as exc:
                assert exc.code == "insufficient_points" and amount > self.model.available[c]
                return
            self.model.available[c] -= amount

        @rule(citizen=st.sampled_from(range(2)), amount=st.integers(1, 50))
        def claim(self, citizen, amount):
            c = citizens[citizen]
            try:
                held = hold(self._key("claim"), c, "merchant:1", amount, timeout_at=LATER)
            except AppError as exc:
                assert exc.code == "insufficient_points" and amount > self.model.available[c]
                return
            self.model.available[c] -= amount
            self.model.held[c] += amount
            self.model.open_holds[held.id] = (c, amount)

        @precondition(lambda self: self.model.open_holds)
        @rule(data=st.data(), redeem=st.booleans())
        def resolve(self, data, redeem):
            hold_id = data.draw(st.sampled_from(sorted(self.model.open_holds, key=str)))
            c, amount = self.model.open_holds.pop(hold_id)
            (post_pending if redeem else void_pending)(hold_id, self._key("resolve"))
            self.model.held[c] -= amount
            if not redeem:
                self.model.available[c] += amount  # (an expired lot's points expire at the next run)

        @rule()
        def expire(self):
            """New year 2027: the 2025 lots (last day 2026-12-31) expire; what they give up is unknown
            to the model in advance, so it is read from the ledger and checked against the run."""
            before = {c: account_balances(c).available for c in citizens}
            run = expire_due_lots(date(2027, 1, 1))
            self.expired = True
            after = {c: account_balances(c).available for c in citizens}
            assert run.points == sum(before[c] - after[c] for c in citizens)
            assert expire_due_lots(date(2027, 1, 1)).points == 0  # a rerun expires nothing more
            self.model.available.update(after)

        @precondition(lambda self: self.model.credits)
        @rule(data=st.data())
        def reverse(self, data):
            transfer_id, c, amount = self.model.credits.pop(data.draw(st.integers(0, len(self.model.credits) - 1)))
            result = reverse_credit(transfer_id, "fraud", "staff:1")
            recovered = min(amount, self.model.available[c])
            assert (result.recovered, result.debt) == (recovered, amount - recovered)
            self.model.available[c] -= recovered
            self.model.debt[c] += amount - recovered

        @invariant()
        def ledger_is_consistent(self):
            assert check_invariants() == []
            for c in citizens:
                balances = account_balances(c)
                assert (balances.available, balances.held, outstanding_debt(c)) == (
                    self.model.available[c], self.model.held[c], self.model.debt[c]
                )

    run_state_machine_as_test(
        LotsMachine,
        settings=settings(
            max_examples=20, stateful_step_count=15, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
