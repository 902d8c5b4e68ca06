"""`flask partners ...`: register partners and manage their signing secrets.

A secret is printed once, when it is made; we keep it only encrypted.
"""
from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup

from app.errors import AppError
from app.extensions import db
from app.partners import service
from app.partners.models import PARTNER_KINDS

partners_cli = AppGroup("partners", help="Partners (data providers) and their signing secrets.")


def _fail(error: AppError) -> click.ClickException:
    db.session.rollback()
    return click.ClickException(error.message)


def _print_secret(key_id: str, secret: str) -> None:
    click.echo(f"key id: {key_id}")
    click.echo(f"secret: {secret}")
    click.echo("Give the secret to the partner over a secure channel now: it is not shown again.")


@partners_cli.command("create")
@click.option("--code", required=True, help="Short code, e.g. shmetro.")
@click.option("--kind", required=True, type=click.Choice(PARTNER_KINDS))
@click.option("--name-zh", required=True)
@click.option("--name-en", required=True)
def create(code: str, kind: str, name_zh: str, name_en: str) -> None:
    """Register a partner and print its first key id and secret."""
    try:
        _, key_id, secret = service.create_partner(code, kind, name_zh, name_en)
    except AppError as error:
        raise _fail(error)
    db.session.commit()
    click.echo(f"partner {code} created")
    _print_secret(key_id, secret)


@partners_cli.command("rotate-secret")
@click.argument("code")
@click.option("--overlap-hours", default=24, show_default=True, type=click.IntRange(0, 24 * 7),
              help="How long the current secret(s) keep working.")
def rotate_secret(code: str, overlap_hours: int) -> None:
    """Issue a new secret; the old one keeps working for the overlap, then expires."""
    try:
        key_id, secret = service.rotate_secret(code, timedelta(hours=overlap_hours))
    except AppError as error:
        raise _fail(error)
    db.session.commit()
    click.echo(f"partner {code}: new secret issued; previous secrets expire in {overlap_hours} h")
    _print_secret(key_id, secret)


@partners_cli.command("suspend")
@click.argument("code")
def suspend(code: str) -> None:
    """Refuse every call from this partner (403 partner_suspended) until reactivated."""
    try:
        service.set_partner_status(code, "suspended")
    except AppError as error:
        raise _fail(error)
    db.session.commit()
    click.echo(f"partner {code} suspended")


@partners_cli.command("activate")
@click.argument("code")
def activate(code: str) -> None:
    """Reactivate a suspended partner."""
    try:
        service.set_partner_status(code, "active")
    except AppError as error:
        raise _fail(error)
    db.session.commit()
    click.echo(f"partner {code} active")
