"""`flask users create-admin`: the first administrator (the others are created through the API)."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from app.errors import AppError
from app.extensions import db
from app.staff import service

users_cli = AppGroup("users", help="Staff accounts.")


@users_cli.command("create-admin")
@click.option("--login", required=True, help="The admin's login name (3-64 characters: a-z 0-9 . _ @ -).")
@click.option("--display-name", default=None, help="Name shown in the console (default: the login).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def create_admin(login: str, display_name: str | None, password_stdin: bool) -> None:
    """Create an admin account; the password is prompted for (or read from stdin), never an argument."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        staff = service.create_staff(login, display_name or login, password, "admin")
    except AppError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(f"created admin {staff.login} (staff id {staff.id})")
