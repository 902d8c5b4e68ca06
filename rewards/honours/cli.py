"""`flask honours load` and `flask honours evaluate`."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import db

honours_cli = AppGroup("honours", help="Badges, levels and awards.")


@honours_cli.command("load")
@click.option("--file", "path", default=None, help="Badge/level YAML (default: rewards/honours/badges.yaml).")
def load(path: str | None) -> None:
    """Load badge and level definitions (upsert; a badge dropped from the file is deactivated)."""
    from rewards.honours.definitions import DefinitionError
    from rewards.honours.service import load_definitions

    try:
        report = load_definitions(path)
    except DefinitionError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    db.session.commit()
    for line in report:
        click.echo(line)


@honours_cli.command("evaluate")
def evaluate() -> None:
    """Award every badge already reached (after loading new badges): all citizens, in chunks."""
    from rewards.honours.service import evaluate_everyone

    totals = evaluate_everyone()
    db.session.commit()
    click.echo(f"{totals.get('citizens', 0)} citizens evaluated, {totals.get('awarded', 0)} badges awarded")
