"""The same event id pushed in 20 concurrent batches (separate connections, real commits) is stored
once and credited once: the unique index and ON CONFLICT DO NOTHING decide, not Python."""
from __future__ import annotations

import threading
import uuid

from sqlalchemy import text

from app import jobs
from app.extensions import db
from tests.conftest import make_citizen
from tests.partners.helpers import bind_through_api, metro_event, new_partner

THREADS = 20
REF = "CARD-CONCURRENT-1"


def test_one_event_id_in_20_concurrent_batches_is_accepted_and_credited_once(app, committed, loaded_scenarios):
    metro = new_partner("metro")
    citizen = make_citizen(trajectory_scenarios=("metro_trip",))
    db.session.commit()
    assert bind_through_api(app.test_client(), metro, citizen, REF).status_code == 201

    barrier = threading.Barrier(THREADS)
    answers: list[dict] = [{} for _ in range(THREADS)]

    def push(slot: int) -> None:
        client = app.test_client()
        events = [metro_event("shared-trip", REF), metro_event(f"own-{slot}", f"UNBOUND-{slot}")]
        barrier.wait()
        response = metro.push(client, events)
        answers[slot] = {"status": response.status_code, **(response.get_json() or {})}

    threads = [threading.Thread(target=push, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [a["status"] for a in answers] == [202] * THREADS
    shared = [a["events"][0]["status"] for a in answers]
    assert sorted(shared) == ["accepted"] + ["duplicate"] * (THREADS - 1)
    assert all(a["events"][1]["status"] == "accepted" for a in answers)

    for answer in answers:  # what the worker does, one job per batch
        jobs.credit_batch(answer["batch_id"])

    with db.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*), count(*) FILTER (WHERE status = 'credited') FROM inbound_events "
                 "WHERE external_id = 'shared-trip'")
        ).one()
        credited_batches = conn.execute(
            text("SELECT count(*) FROM event_batches WHERE completed_at IS NOT NULL AND id = ANY(:ids)"),
            {"ids": [uuid.UUID(a["batch_id"]) for a in answers]},
        ).scalar()
    assert tuple(stored) == (1, 1)
    assert credited_batches == THREADS
