"""A Hypothesis state machine over earn / transfer / hold / post / void and replays.

After every step the ledger's own invariants hold (check_invariants() == []) and every citizen's
balances equal a plain Python model of what should have happened.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

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
from tests.ledger.conftest import earning

LATER = datetime(2099, 1, 1, tzinfo=UTC)


@dataclass
class Model:
    available: dict[int, int]
    held: dict[int, int] = field(default_factory=dict)
    open_holds: dict[object, tuple[int, int]] = field(default_factory=dict)  # hold id -> (citizen, amount)
    resolved: set[object] = field(default_factory=set)


def test_the_ledger_keeps_its_invariants_under_any_sequence(db_session):
    citizens = [make_citizen() for _ in range(3)]

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.savepoint = db.session.begin_nested()  # each example starts from an empty ledger
            self.model = Model(available={c: 0 for c in citizens}, held={c: 0 for c in citizens})
            self.steps = 0
            self.earned: list = []

        def teardown(self) -> None:
            self.savepoint.rollback()

        def _key(self, prefix: str) -> str:
            self.steps += 1
            return f"{prefix}:{self.steps}"

        @rule(citizen=st.sampled_from(range(3)), amounts=st.lists(st.integers(1, 60), min_size=1, max_size=4),
              scenario=st.sampled_from(["metro_trip", "bike_share"]))
        def earn(self, citizen, amounts, scenario):
            batch = [earning(self._key("earn"), citizens[citizen], a, scenario) for a in amounts]
            post_earnings(batch)
            self.earned.append(batch)
            self.model.available[citizens[citizen]] += sum(amounts)

        @precondition(lambda self: self.earned)
        @rule(data=st.data())
        def replay_an_earning_batch(self, data):
            post_earnings(data.draw(st.sampled_from(self.earned)))  # changes nothing

        @rule(citizen=st.sampled_from(range(3)), amount=st.integers(1, 80))
        def spend(self, citizen, amount):
            c = citizens[citizen]
            key = self._key("spend")
            try:
                transfer(key, f"citizen:{c}", "merchant:1", amount, "spend")
            except AppError as exc:
                assert exc.code == "insufficient_points" and amount > self.model.available[c]
                return
            assert amount <= self.model.available[c]
            self.model.available[c] -= amount
            assert transfer(key, f"citizen:{c}", "merchant:1", amount, "spend").amount == amount  # replay

        @rule(citizen=st.sampled_from(range(3)), amount=st.integers(1, 80))
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
                self.model.available[c] += amount
            self.model.resolved.add(hold_id)

        @precondition(lambda self: self.model.resolved)
        @rule(data=st.data(), redeem=st.booleans())
        def resolve_again(self, data, redeem):
            hold_id = data.draw(st.sampled_from(sorted(self.model.resolved, key=str)))
            try:
                (post_pending if redeem else void_pending)(hold_id, self._key("resolve"))
            except AppError as exc:
                assert exc.code == "hold_already_resolved"
            else:
                raise AssertionError("a hold resolved twice")

        @invariant()
        def ledger_is_consistent(self):
            assert check_invariants() == []
            for c in citizens:
                balances = account_balances(c)
                assert (balances.available, balances.held) == (self.model.available[c], self.model.held[c])

    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=40, stateful_step_count=15, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
