"""Recurring jobs with rq's own cron scheduler (`flask scheduler`), run beside `flask worker`.

rq 3's `CronScheduler` enqueues registered functions on an interval or a cron string. Its
`CronJob.enqueue` builds a plain `Queue` with rq's default (pickle) serializer, while our workers
read JSON (`JSONSerializer`: jobs carry ids, never objects), so `JSONCronJob` enqueues with the
JSON serializer; everything else — timing, history, registry, heartbeats, signals — is rq's.

Several scheduler processes may run; each enqueues independently, which is harmless for the jobs
registered here because they are idempotent (the sweeper re-enqueues nothing already queued, and
crediting a batch twice credits it once). Add a recurring job by appending to `recurring_jobs`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from flask import Flask
from rq import Queue, cron_job_registry
from rq.cron import CronJob, CronScheduler
from rq.defaults import DEFAULT_CRON_JOB_HISTORY_LIMIT, DEFAULT_CRON_JOB_HISTORY_TTL
from rq.job import Job
from rq.serializers import JSONSerializer

from app.extensions import redis_client

SWEEPER_INTERVAL_SECONDS = 60
COUPON_EXPIRY_INTERVAL_SECONDS = 300  # unused coupons past their end: holds voided, points back


@dataclass(frozen=True)
class Recurring:
    func: Callable[..., Any]
    interval: int | None = None  # seconds
    cron: str | None = None  # crontab string, in the scheduler's local time
    job_timeout: int | None = None


def recurring_jobs(app: Flask) -> list[Recurring]:
    """The platform's recurring jobs. Each must be idempotent: a second scheduler may enqueue it too."""
    from app.jobs import expire_coupons, expire_points, sweep_uncredited

    return [
        Recurring(sweep_uncredited, interval=int(app.config.get("SWEEPER_INTERVAL_SECONDS", SWEEPER_INTERVAL_SECONDS))),
        Recurring(expire_coupons, interval=COUPON_EXPIRY_INTERVAL_SECONDS),
        Recurring(expire_points, interval=int(app.config.get("POINTS_EXPIRY_INTERVAL_SECONDS", 3600))),
    ]


class JSONCronJob(CronJob):
    """A CronJob that enqueues with the JSON serializer our workers use."""

    def enqueue(self, connection: Any) -> Job:
        assert self.func is not None
        queue = Queue(self.queue_name, connection=connection, serializer=JSONSerializer)
        with connection.pipeline() as pipeline:
            job = queue.enqueue(self.func, args=self.args, kwargs=self.kwargs, **self.job_options, pipeline=pipeline)
            assert job.enqueued_at is not None
            pipeline.zadd(self.job_history_key, {job.id: job.enqueued_at.timestamp()})
            pipeline.zremrangebyrank(self.job_history_key, 0, -(DEFAULT_CRON_JOB_HISTORY_LIMIT + 1))
            pipeline.expire(self.job_history_key, DEFAULT_CRON_JOB_HISTORY_TTL)
            cron_job_registry.add(self.name, pipeline, enqueue_timestamp=job.enqueued_at.timestamp())
            pipeline.execute()
        return job


class JSONCronScheduler(CronScheduler):
    """rq's CronScheduler, registering `JSONCronJob`s."""

    def register(  # type: ignore[override]
        self,
        func: Callable[..., Any],
        queue_name: str,
        interval: int | None = None,
        cron: str | None = None,
        job_timeout: int | None = None,
        name: str = "",
        **options: Any,
    ) -> CronJob:
        cron_job = JSONCronJob(
            queue_name=queue_name,
            func=func,
            interval=interval,
            cron=cron,
            job_timeout=job_timeout,
            name=name,
            **options,
        )
        self._cron_jobs.append(cron_job)
        self.log.info("Registered %s on %s (every %s s, cron %s)", cron_job.func_name, queue_name, interval, cron)
        return cron_job


def build_scheduler(app: Flask) -> JSONCronScheduler:
    """A cron scheduler with every recurring job registered on the app's queue."""
    with app.app_context():
        connection = redis_client()
        queue_name = app.config["RQ_QUEUE"]
        scheduler = JSONCronScheduler(connection=connection, name="")
        for job in recurring_jobs(app):
            scheduler.register(job.func, queue_name, interval=job.interval, cron=job.cron, job_timeout=job.job_timeout)
    return scheduler


def run_scheduler(app: Flask) -> None:
    """Run until SIGINT/SIGTERM: enqueue each recurring job when it is due."""
    build_scheduler(app).start()


def register_scheduler_cli(app: Flask) -> None:
    """`flask scheduler`: the recurring-job scheduler (run one beside the workers)."""

    @app.cli.command("scheduler")
    def scheduler() -> None:
        """Enqueue recurring jobs (the uncredited-batch sweeper every minute, ...) with rq's cron scheduler."""
        from flask import current_app

        click.echo(f"scheduler: recurring jobs on queue {current_app.config['RQ_QUEUE']}")
        run_scheduler(current_app._get_current_object())  # type: ignore[attr-defined]
