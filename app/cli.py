"""Flask CLI: `flask worker`, `flask scenarios load`, `flask demo load`, ..."""
from __future__ import annotations

import click
from flask import Flask, current_app


def register_cli(app: Flask) -> None:
    @app.cli.command("worker")
    @click.option("--burst", is_flag=True, help="Process what is queued, then exit.")
    @click.option("--with-scheduler/--without-scheduler", default=True)
    def worker(burst: bool, with_scheduler: bool) -> None:
        """Run an rq worker on the app's queue (jobs get a fresh app context each)."""
        from app.worker import run_worker

        run_worker(current_app, burst=burst, with_scheduler=with_scheduler)

    from scenarios.cli import scenarios_cli

    app.cli.add_command(scenarios_cli)
