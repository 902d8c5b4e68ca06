"""Ledger test helpers: scenarios for DailyUsage rows, earnings, and a thread runner with one session each."""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from app.extensions import db
from app.ledger.service import Earning


def make_scenario(code: str, name_zh: str, name_en: str) -> int:
    """A scenario with one version (for its name); returns the scenario id."""
    from scenarios.models import Methodology, Scenario, ScenarioVersion

    methodology = Methodology(
        code=f"SHCI-P-{code.upper()}", version=1, type="personal", title={"zh": name_zh, "en": name_en},
        status="provisional", definition={},
    )
    scenario = Scenario(code=code, category="行", status="live")
    db.session.add_all([methodology, scenario])
    db.session.flush()
    db.session.add(
        ScenarioVersion(
            scenario_id=scenario.id, version=1, methodology_id=methodology.id, name={"zh": name_zh, "en": name_en},
            definition={}, effective_from=datetime(2025, 11, 1, tzinfo=UTC),
        )
    )
    db.session.flush()
    return scenario.id


def earning(key: str, citizen_id: int, amount: int, scenario_code: str = "metro_trip", **details: Any) -> Earning:
    return Earning(
        idempotency_key=key, citizen_id=citizen_id, scenario_code=scenario_code, amount=amount, event_id=None,
        details={"scenario": scenario_code, **details},
    )


def run_in_threads(app: Flask, count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(i) in `count` threads, each in its own app context (so its own session and connection),
    all released together by a barrier. Returns each result or the exception it raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def runner(i: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results[i] = work(i)
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - reported back to the test
                db.session.rollback()
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
