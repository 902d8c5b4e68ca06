"""Crediting through real rq workers: a worker SIGKILLed mid-batch loses nothing and credits nothing
twice; the sweeper re-enqueues a batch whose enqueue was lost; rq's cron scheduler runs the sweeper.

Worker processes are started through the Flask CLI (`flask --app wsgi worker`) with APP_ENV=testing,
so they use the same PostgreSQL, Redis and queue as the test (tests/conftest.py exports the URLs).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import func, select, text

from app import jobs
from app.behaviours.crediting import PAUSE_FLAG_KEY, TEST_PAUSE_ENV, TEST_PAUSE_SECONDS_ENV
from app.behaviours.models import EventBatch, InboundEvent
from app.extensions import db, queue
from app.ledger.models import LedgerTransfer
from app.ledger.service import check_invariants
from app.scheduler import build_scheduler, register_scheduler_cli
from app.worker import run_worker
from tests.behaviours.conftest import Ev, bind, make_batch, make_partner, many_citizens
from tests.conftest import make_app, make_citizen

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(ROOT / ".venv" / "bin" / "flask")
CITIZENS = 250
TRIPS_EACH = 12  # 10 credited + 2 over the daily cap, per citizen


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (TEST_PAUSE_ENV, TEST_PAUSE_SECONDS_ENV)}
    env.update(
        APP_ENV="testing",
        DATABASE_URL=os.environ["TEST_DATABASE_URL"],
        REDIS_URL=os.environ["TEST_REDIS_URL"],
        TEST_DATABASE_URL=os.environ["TEST_DATABASE_URL"],
        TEST_REDIS_URL=os.environ["TEST_REDIS_URL"],
        **extra,
    )
    return env


def start_worker(log_path: Path, *args: str, **env: str) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [FLASK, "--app", "wsgi", "worker", "--without-scheduler", *args],
            cwd=ROOT, env=worker_env(**env), stdout=log, stderr=subprocess.STDOUT,
        )


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    output = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{output}")


def make_big_batch() -> tuple[object, list[tuple[int, str]]]:
    partner = make_partner("metro")
    refs = many_citizens(partner, CITIZENS, trajectory_scenarios=("metro_trip",))
    events = [
        Ev(ref, "metro_trip", f"2026-11-26T{1 + trip // 6:02d}:{(trip % 6) * 7 + citizen % 7:02d}:00Z",
           {"distance_km": f"{5 + citizen % 10}.5"})
        for citizen, ref in refs
        for trip in range(TRIPS_EACH)
    ]
    return make_batch(partner, events), refs


def test_a_worker_killed_mid_batch_commits_nothing_and_a_rerun_credits_once(
    app, loaded_scenarios, redis, tmp_path
) -> None:
    batch_id, refs = make_big_batch()
    db.session.commit()
    log = tmp_path / "worker.log"

    first = start_worker(log, **{TEST_PAUSE_ENV: "before_commit", TEST_PAUSE_SECONDS_ENV: "120"})
    try:
        job = queue().enqueue(jobs.credit_batch, str(batch_id))
        wait_for(lambda: redis.get(PAUSE_FLAG_KEY), 60, "the worker to reach the pause point", first, log)
        assert job.id in StartedJobRegistry(queue=queue()).get_job_ids()  # visibly in progress
        # Everything is written (ledger, usage, outcomes) but not committed: kill it now.
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    assert first.returncode == -signal.SIGKILL
    assert db.session.scalar(select(func.count()).select_from(LedgerTransfer)) == 0
    not_accepted = select(func.count()).select_from(InboundEvent).where(InboundEvent.status != "accepted")
    assert db.session.scalar(not_accepted) == 0
    assert db.session.scalar(text("SELECT count(*) FROM daily_usage")) == 0
    assert db.session.get(EventBatch, batch_id).completed_at is None

    # As the sweeper would a minute later: it finds the uncredited batch and re-enqueues it.
    db.session.execute(
        text("UPDATE event_batches SET received_at = now() - interval '2 minutes' WHERE id = :id"), {"id": batch_id}
    )
    db.session.commit()
    queue().enqueue(jobs.sweep_uncredited)
    second = start_worker(log, "--burst")
    assert second.wait(timeout=120) == 0, log.read_text(errors="replace")[-4000:]

    db.session.expire_all()
    statuses = dict(
        db.session.execute(
            select(InboundEvent.status, func.count())
            .where(InboundEvent.batch_id == batch_id)
            .group_by(InboundEvent.status)
        ).all()
    )
    assert statuses == {"credited": CITIZENS * 10, "capped": CITIZENS * 2}
    assert db.session.get(EventBatch, batch_id).completed_at is not None
    per_event = db.session.execute(text(
        "SELECT count(*) FILTER (WHERE e.transfer_id IS NULL), count(t.id), count(DISTINCT t.id), "
        "count(*) FILTER (WHERE t.amount <> e.points) "
        "FROM inbound_events e LEFT JOIN ledger_transfers t ON t.event_id = e.id WHERE e.status = 'credited'"
    )).one()
    assert tuple(per_event) == (0, CITIZENS * 10, CITIZENS * 10, 0)
    mismatched = db.session.execute(text(
        "SELECT a.citizen_id FROM ledger_accounts a "
        "JOIN (SELECT citizen_id, sum(points) AS points FROM inbound_events GROUP BY citizen_id) s "
        "  ON s.citizen_id = a.citizen_id "
        "WHERE a.kind = 'citizen' AND a.credits_posted <> s.points"
    )).all()
    assert mismatched == []
    assert db.session.scalar(text("SELECT count(*) FROM ledger_accounts WHERE kind = 'citizen'")) == CITIZENS
    assert check_invariants() == []


def lost_batch(minutes_ago: int) -> object:
    partner = make_partner("metro")
    citizen = make_citizen(trajectory_scenarios=("metro_trip",))
    ref = bind(partner, citizen)
    batch_id = make_batch(partner, [Ev(ref, "metro_trip", "2026-11-26T01:00:00Z", {"distance_km": "10.57"})])
    db.session.execute(
        text("UPDATE event_batches SET received_at = now() - make_interval(mins => :m) WHERE id = :id"),
        {"m": minutes_ago, "id": batch_id},
    )
    return batch_id


def test_the_sweeper_enqueues_a_batch_whose_enqueue_was_lost(app, loaded_scenarios) -> None:
    lost = lost_batch(minutes_ago=2)
    recent = lost_batch(minutes_ago=0)
    db.session.commit()

    assert jobs.sweep_uncredited() == 1
    assert jobs.sweep_uncredited() == 0  # already waiting in the queue: not enqueued twice
    assert queue().get_job_ids() == [jobs.sweep_job_id(lost)]

    backlog = lost_batch(minutes_ago=3)  # its first job is still queued behind others: not a loss
    db.session.commit()
    queue().enqueue(jobs.credit_batch, str(backlog), job_id=jobs.ingest_job_id(backlog))
    assert jobs.sweep_uncredited() == 0

    run_worker(app, burst=True, with_scheduler=False)

    db.session.expire_all()
    assert db.session.get(EventBatch, lost).completed_at is not None
    assert db.session.get(EventBatch, backlog).completed_at is not None
    assert db.session.get(EventBatch, recent).completed_at is None  # arrived just now: its own job is due
    assert db.session.scalars(select(InboundEvent.status).where(InboundEvent.batch_id == lost)).all() == ["credited"]
    assert jobs.sweep_uncredited() == 0


def test_the_cron_scheduler_enqueues_the_recurring_jobs_as_json_and_a_worker_runs_them(app, loaded_scenarios) -> None:
    lost = lost_batch(minutes_ago=5)
    db.session.commit()
    scheduler = build_scheduler(app)
    jobs = {job.func_name: job for job in scheduler.get_jobs()}
    sweeper = jobs["app.jobs.sweep_uncredited"]
    assert (sweeper.interval, sweeper.queue_name) == (60, "carbon-test")
    assert all(job.queue_name == "carbon-test" and job.interval > 0 for job in jobs.values())

    due = scheduler.enqueue_jobs()
    assert {job.func_name for job in due} == set(jobs)  # every recurring job runs once at start
    assert scheduler.enqueue_jobs() == []  # the next runs are at least a minute away
    q = queue()
    enqueued = [Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer) for job_id in q.get_job_ids()]
    assert sorted(job.func_name for job in enqueued) == sorted(jobs)

    run_worker(app, burst=True, with_scheduler=False)

    db.session.expire_all()
    assert db.session.get(EventBatch, lost).completed_at is not None
    assert all(job.get_status(refresh=True) == "finished" for job in enqueued)


def test_flask_scheduler_runs_rq_cron_until_terminated(app, redis, tmp_path) -> None:
    log = tmp_path / "scheduler.log"
    code = "from app import create_app; from app.scheduler import run_scheduler; run_scheduler(create_app())"
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=worker_env(), stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        q = Queue(app.config["RQ_QUEUE"], connection=redis, serializer=JSONSerializer)

        def sweeper_enqueued() -> list[str]:
            names = [q.fetch_job(job_id).func_name for job_id in q.get_job_ids()]
            return [name for name in names if name == "app.jobs.sweep_uncredited"]

        wait_for(sweeper_enqueued, 30, "the scheduler to enqueue the sweeper", process, log)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, log.read_text(errors="replace")[-4000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_register_scheduler_cli_adds_the_flask_scheduler_command() -> None:
    other = make_app()
    if "scheduler" not in other.cli.commands:
        register_scheduler_cli(other)
    result = other.test_cli_runner().invoke(args=["scheduler", "--help"])
    assert result.exit_code == 0 and "recurring" in result.output
