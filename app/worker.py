"""The rq worker and the cron scheduler, started through the Flask CLI (`flask worker`)."""
from __future__ import annotations

import gc

from flask import Flask
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from app.extensions import queue
from app.jobs import set_worker_app

# A crediting job allocates ~100,000 short-lived objects per 5,000 events (events, activities,
# explanations, rows). With the default thresholds (700, 10, 10) the cyclic collector ran hundreds
# of times a job and repeatedly walked everything the worker had loaded (Flask, SQLAlchemy, rq):
# ~25% of a job's Python time, measured. Objects alive at start-up are frozen out of collection
# and the young generation is collected after 100,000 allocations instead of 700. Memory stays
# bounded: crediting's data is acyclic and freed by reference counting at the end of each job.
GC_THRESHOLDS = (100_000, 50, 100)


def run_worker(app: Flask, *, burst: bool = False, with_scheduler: bool = True) -> None:
    """SimpleWorker runs jobs in-process (≈290 jobs/s vs ≈106 forking); jobs hold no state between runs."""
    set_worker_app(app)
    with app.app_context():
        q = queue()
        worker = SimpleWorker([q], connection=q.connection, serializer=JSONSerializer)
    if not app.testing:  # a test calling this runs inside pytest's process: leave its collector alone
        tune_gc()
    worker.work(burst=burst, with_scheduler=with_scheduler)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
