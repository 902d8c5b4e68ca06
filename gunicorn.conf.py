"""gunicorn reads this file from the working directory (`gunicorn wsgi:app`, `make run`).

Command-line options override what is set here; the hook below applies either way.
"""


def post_worker_init(worker: object) -> None:
    """Tune the garbage collector once the app is loaded (see app.worker.tune_gc): a 5,000-event
    partner batch allocates ~100,000 objects, and the default thresholds made the collector walk
    the whole app again and again — ~20% of the request's CPU, measured."""
    from app.worker import tune_gc

    tune_gc()
