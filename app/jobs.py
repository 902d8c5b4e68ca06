"""rq entry points: thin, they call services. Jobs receive ids (JSON), never ORM objects.

Each job runs in an app context with a fresh session and commits once at the end (the job
boundary), or rolls back. Jobs are enqueued only after the data they need is committed.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import db, queue

log = logging.getLogger(__name__)
_PENDING_KEY = "enqueue_after_commit"
_worker_app: Flask | None = None


def enqueue_after_commit(func: Callable[..., Any], *args: Any, job_id: str | None = None) -> None:
    """Enqueue `func(*args)` once the current transaction commits (never before: a fast worker would miss the rows)."""
    db.session.info.setdefault(_PENDING_KEY, []).append((func, args, job_id))


@event.listens_for(Session, "after_commit")
def _enqueue_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, [])
    for func, args, job_id in pending:
        try:
            queue().enqueue(func, *args, job_id=job_id, result_ttl=3600, failure_ttl=7 * 24 * 3600)
        except Exception:  # the sweeper enqueues anything missed
            log.exception("enqueue failed for %s; the sweeper will pick it up", func.__name__)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_PENDING_KEY, None)


def set_worker_app(app: Flask) -> None:
    global _worker_app
    _worker_app = app


@contextmanager
def job_boundary() -> Iterator[None]:
    """An app context and one unit of work: commit on success, roll back on error, remove the session."""
    if has_app_context():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    else:
        if _worker_app is None:
            from app import create_app

            set_worker_app(create_app())
        app = _worker_app
    assert app is not None
    with app.app_context():
        try:
            yield
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()


def credit_batch(batch_id: str) -> dict[str, int]:
    """Credit every accepted event of a partner batch (a rerun credits nothing twice)."""
    from app.behaviours.crediting import credit_batch as credit

    with job_boundary():
        counts = credit(uuid.UUID(batch_id))
        if counts.get("credited"):
            enqueue_after_commit(evaluate_honours, str(batch_id), job_id=f"honours-{batch_id}")
        return counts


def credit_events(event_ids: list[int], reviewed: bool = False) -> dict[str, int]:
    """Credit self-declared events (their item claims are made by the declaration), or events a
    reviewer approved (`reviewed=True`: the anti-fraud rules that held them are not applied again)."""
    from app.behaviours.crediting import credit_events as credit

    with job_boundary():
        counts = credit([int(event_id) for event_id in event_ids], reviewed=reviewed)
        if counts.get("credited"):
            enqueue_after_commit(evaluate_honours_for_events, [int(event_id) for event_id in event_ids])
        return counts


def evaluate_honours(batch_id: str) -> dict[str, int]:
    """Award the badges the citizens of a credited batch have reached (a rerun awards nothing twice)."""
    from rewards.honours.service import evaluate_batch

    with job_boundary():
        return evaluate_batch(uuid.UUID(batch_id))


def evaluate_honours_for_events(event_ids: list[int]) -> dict[str, int]:
    """The same for self-declared or reviewed events credited outside a batch."""
    from rewards.honours.service import evaluate_events

    with job_boundary():
        return evaluate_events([int(event_id) for event_id in event_ids])


def expire_coupons() -> int:
    """Void the holds of unused coupons past their use window (points return); a rerun voids nothing more."""
    from rewards.coupons.service import expire_due_coupons

    with job_boundary():
        return expire_due_coupons()



def expire_points(max_rounds: int = 100) -> dict[str, int]:
    """Notify points expiring within 30 days (once per lot), then expire due lots, 5,000 per
    transaction, until a round expires nothing. A rerun expires and notifies nothing more."""
    from app.ledger.expiry import expire_due_lots, notify_expiring_lots

    with job_boundary():
        notified = notify_expiring_lots()
    expired_lots = expired_points = 0
    for _ in range(max_rounds):
        with job_boundary():
            run = expire_due_lots()
        expired_lots += run.lots
        expired_points += run.points
        if run.lots == 0:
            break
    return {"notified": notified, "lots": expired_lots, "points": expired_points}

def sweep_job_id(batch_id: uuid.UUID | str) -> str:
    return f"credit-{batch_id}-sweep"


def ingest_job_id(batch_id: uuid.UUID | str) -> str:
    """The id the ingest endpoint gives a batch's first crediting job."""
    return f"credit-{batch_id}"


def sweep_uncredited() -> int:
    """Re-enqueue batches still uncredited a minute after they arrived.

    Covers a crash between commit and enqueue, a lost Redis write and a worker killed mid-batch
    (its transaction rolled back, so the batch is simply uncredited again). Rerunning a batch is
    harmless: crediting locks the batch row and skips what is no longer `accepted`. A batch whose
    crediting job is still waiting in the queue (a backlog, not a loss) is left alone.
    """
    from app.behaviours.crediting import batches_to_sweep

    with job_boundary():
        batch_ids = batches_to_sweep(current_app.config["SWEEPER_AFTER_SECONDS"])
        q = queue()
        enqueued = 0
        for batch_id in batch_ids:
            if _waiting_in_queue(q, ingest_job_id(batch_id)) or _waiting_in_queue(q, sweep_job_id(batch_id)):
                continue
            q.enqueue(
                credit_batch, str(batch_id), job_id=sweep_job_id(batch_id), result_ttl=3600, failure_ttl=7 * 24 * 3600
            )
            enqueued += 1
        if batch_ids:
            log.info("sweeper: %d uncredited batch(es), %d enqueued", len(batch_ids), enqueued)
        return enqueued


def _waiting_in_queue(q: Any, job_id: str) -> bool:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    try:
        job = Job.fetch(job_id, connection=q.connection, serializer=q.serializer)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) == JobStatus.QUEUED
