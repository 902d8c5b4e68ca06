"""Migrations reproduce the models' schema from empty, have one head, and go down and up again."""
from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.extensions import db
from tests.conftest import DATABASE_URL, make_app


@pytest.fixture(scope="module")
def empty_database_app() -> Iterator[Flask]:
    url = make_url(DATABASE_URL)
    name = f"{url.database}_migrations"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    app = make_app(SQLALCHEMY_DATABASE_URI=url.set(database=name).render_as_string(hide_password=False))
    yield app
    with app.app_context():
        db.engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_single_head() -> None:
    app = make_app()
    with app.app_context():
        script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
        assert len(script.get_heads()) == 1


def test_upgrade_from_empty_matches_the_models_then_downgrade_and_upgrade(empty_database_app: Flask) -> None:
    with empty_database_app.app_context():
        upgrade()
        engine = create_engine(empty_database_app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
            trigger = conn.execute(
                text("SELECT count(*) FROM pg_trigger WHERE tgname = 'ledger_transfers_append_only'")
            ).scalar_one()
        assert diff == [], f"models and migrations differ: {diff}"
        assert trigger == 1
        downgrade(revision="base")
        upgrade()
        engine.dispose()
