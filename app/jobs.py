"""rq entry points: thin, they call services. Jobs receive ids (JSON), never ORM objects.

Each job runs in an app context with a fresh session and commits once at the end (the job
boundary), or rolls back. Jobs are enqueued only after the data they need is committed.
"""
from __future__ import annotations

import logging
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
    import uuid

    from app.behaviours.crediting import credit_batch as credit

    with job_boundary():
        return credit(uuid.UUID(batch_id))


def sweep_uncredited() -> int:
    """Re-enqueue batches still uncredited a minute after they arrived (a crash between commit and enqueue)."""
    from app.behaviours.crediting import batches_to_sweep

    with job_boundary():
        batch_ids = batches_to_sweep(current_app.config["SWEEPER_AFTER_SECONDS"])
        for batch_id in batch_ids:
            queue().enqueue(credit_batch, str(batch_id), job_id=f"credit-{batch_id}-sweep")
        return len(batch_ids)
