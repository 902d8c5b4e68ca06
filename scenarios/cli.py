"""`flask scenarios ...`"""
from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import db

scenarios_cli = AppGroup("scenarios", help="Methodologies and scenarios.")


@scenarios_cli.command("load")
@click.option("--directory", default=None, help="Folder of methodology YAML files (default: the seeds).")
def load(directory: str | None) -> None:
    """Load the methodology/scenario YAML files into the database (new versions only)."""
    from scenarios.definitions import DefinitionError
    from scenarios.service import load_directory

    try:
        report = load_directory(directory)
    except DefinitionError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    db.session.commit()
    for line in report:
        click.echo(line)
