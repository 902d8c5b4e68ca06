"""Filing numbers under concurrency: two admins filing at once get two numbers, never the same one."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models_base import utcnow
from scenarios.models import Methodology
from scenarios.registry import service
from scenarios.registry.schemas import MethodologyDraftSchema
from tests.console.helpers import ebike_body
from tests.rewards.factories import make_staff


def _approved(code: str, operator: int, reviewer: int) -> int:
    methodology = service.create_draft(operator, MethodologyDraftSchema().load(ebike_body(code)))
    service.submit(operator, methodology.id)
    service.review(reviewer, methodology.id, "approve", None)
    return methodology.id


def test_concurrent_filings_get_distinct_consecutive_numbers(app: Flask, committed) -> None:
    operator, reviewer, admin, admin2 = (make_staff(role) for role in ("operator", "reviewer", "admin", "admin"))
    ids = [_approved(f"SHCI-P-RACE-{n}", operator, reviewer) for n in range(4)]
    committed.commit()
    barrier = threading.Barrier(len(ids))
    failures: list[BaseException] = []

    def file_one(methodology_id: int, actor: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                service.file_version(actor, methodology_id)
                db.session.commit()
            except BaseException as error:  # reported below, a thread cannot fail the test itself
                failures.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=file_one, args=(mid, admin if i % 2 else admin2)) for i, mid in enumerate(ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    committed.expire_all()
    numbers = sorted(committed.scalars(select(Methodology.filing_number).where(Methodology.id.in_(ids))))
    year = utcnow().astimezone(service.SHANGHAI).year
    assert numbers == [f"SHCI-M-{year}-{n:03d}" for n in range(1, 5)]


def test_the_sequence_starts_again_each_year(db_session) -> None:
    assert service.next_filing_number(datetime(2031, 3, 1, tzinfo=UTC)) == "SHCI-M-2031-001"
    assert service.next_filing_number(datetime(2031, 12, 31, 16, 30, tzinfo=UTC)) == "SHCI-M-2032-001"  # Shanghai
    assert service.next_filing_number(datetime(2031, 6, 1, tzinfo=UTC)) == "SHCI-M-2031-002"
