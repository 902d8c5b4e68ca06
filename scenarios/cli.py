"""`flask scenarios ...`"""
from __future__ import annotations

import click
from flask.cli import AppGroup

scenarios_cli = AppGroup("scenarios", help="Methodologies and scenarios.")


@scenarios_cli.command("load")
@click.option("--directory", default=None, help="Folder of methodology YAML files.")
def load(directory: str | None) -> None:
    """Load the methodology/scenario YAML files into the database (new versions only)."""
    raise click.ClickException("not wired yet")
