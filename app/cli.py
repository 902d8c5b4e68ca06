"""Flask CLI: `flask worker`, `flask scenarios load`, `flask demo load`, ..."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.extensions import db


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
    app.cli.add_command(keys_cli)

    from app.partners.cli import partners_cli

    app.cli.add_command(partners_cli)

    from app.staff.cli import users_cli

    app.cli.add_command(users_cli)

    from app.demo import demo_cli

    app.cli.add_command(demo_cli)

    from rewards.honours.cli import honours_cli

    app.cli.add_command(honours_cli)

    from app.scheduler import register_scheduler_cli

    register_scheduler_cli(app)


keys_cli = AppGroup("keys", help="JWT signing keys.")


@keys_cli.command("rotate")
def rotate_key() -> None:
    """Create a new signing key; tokens signed with older keys stay valid until those are retired."""
    from app.auth.tokens import rotate_signing_key

    key = rotate_signing_key()
    db.session.commit()
    click.echo(f"new signing key {key.kid}")


@keys_cli.command("retire")
@click.argument("kid")
def retire_key(kid: str) -> None:
    """Retire a signing key: tokens it signed are refused from now on."""
    from app.auth.tokens import retire_signing_key

    if not retire_signing_key(kid):
        raise click.ClickException(f"no signing key {kid}")
    db.session.commit()
    click.echo(f"retired signing key {kid}")
