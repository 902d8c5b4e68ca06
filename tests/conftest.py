"""Test fixtures: real PostgreSQL and real Redis, never mocks.

Most tests run inside a transaction rolled back at the end (`db_session`, SQLAlchemy's
create_savepoint recipe). Tests that need other connections to see their data (threads,
worker processes) use `committed`, which truncates every table afterwards.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from app import create_app
from app.config import TestingConfig, normalise_database_url
from app.extensions import db
from app.local_services import reachable, start_embedded_postgres, start_embedded_redis

INSTANCE = Path(__file__).resolve().parent.parent / "instance" / "test"


def _service_urls() -> tuple[str, str]:
    """The configured test servers, or embedded ones when those are not reachable (never a skip)."""
    database_url = TestingConfig.SQLALCHEMY_DATABASE_URI or ""
    redis_url = TestingConfig.REDIS_URL or ""
    if not reachable(database_url):
        database_url = start_embedded_postgres(INSTANCE / "pg", "test")
    if not reachable(redis_url):
        redis_url = start_embedded_redis(INSTANCE / "redis")
    return normalise_database_url(database_url), redis_url


DATABASE_URL, REDIS_URL = _service_urls()
os.environ["TEST_DATABASE_URL"] = DATABASE_URL
os.environ["TEST_REDIS_URL"] = REDIS_URL


def make_app(**overrides: object) -> Flask:
    return create_app(
        "testing", {"SQLALCHEMY_DATABASE_URI": DATABASE_URL, "REDIS_URL": REDIS_URL, **overrides}
    )


@pytest.fixture(scope="session")
def app() -> Iterator[Flask]:
    application = make_app()
    with application.app_context():
        from tests.schema import create_schema

        create_schema()
    yield application


@pytest.fixture(autouse=True)
def _clean_redis(request: pytest.FixtureRequest) -> None:
    """Each test that uses the app starts with an empty Redis (nonces, rate limits, queues)."""
    if "app" in request.fixturenames:
        request.getfixturevalue("app").extensions["redis"].flushdb()


@pytest.fixture
def redis(app: Flask) -> redis_lib.Redis:
    return app.extensions["redis"]


@pytest.fixture
def db_session(app: Flask) -> Iterator[object]:
    """A session whose work is rolled back after the test; request commits become savepoints."""
    with app.app_context():
        engine = db.engine
        connection = engine.connect()
        transaction = connection.begin()
        # Flask-SQLAlchemy's Session.get_bind picks from db.engines for mapped tables, so the
        # connection must stand in for the engine there as well as in the session's bind.
        db.engines[None] = connection  # type: ignore[assignment]
        original = db.session
        db.session = db._make_scoped_session({"bind": connection, "join_transaction_mode": "create_savepoint"})
        try:
            yield db.session
        finally:
            db.session.remove()
            db.session = original
            db.engines[None] = engine
            transaction.rollback()
            connection.close()


@pytest.fixture
def committed(app: Flask) -> Iterator[object]:
    """Real commits, visible to other connections and processes; every table is emptied afterwards."""
    with app.app_context():
        yield db.session
        db.session.remove()
        truncate_all()


def truncate_all() -> None:
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# ---- shared data helpers (cross-domain); domain-specific fixtures live in tests/<domain>/conftest.py ----

PRIVACY_TERMS_TEST_VERSION = "2026-11"


def make_citizen(*, privacy_consent: bool = True, trajectory_scenarios: tuple[str, ...] = ()) -> int:
    """A citizen with the given consents, flushed in the current session; returns the id."""
    from app.accounts.models import Citizen, Consent

    citizen = Citizen(status="active")
    db.session.add(citizen)
    db.session.flush()
    if privacy_consent:
        db.session.add(Consent(citizen_id=citizen.id, kind="privacy", terms_version=PRIVACY_TERMS_TEST_VERSION))
    for code in trajectory_scenarios:
        db.session.add(
            Consent(
                citizen_id=citizen.id,
                kind="trajectory",
                scenario_code=code,
                terms_version=PRIVACY_TERMS_TEST_VERSION,
            )
        )
    db.session.flush()
    return citizen.id


def bearer_for(citizen_id: int) -> dict[str, str]:
    from app.auth.tokens import issue_access_token

    token, _ = issue_access_token(f"citizen:{citizen_id}")
    return {"Authorization": f"Bearer {token}"}


def bearer_as(subject: str, role: str) -> dict[str, str]:
    """Headers for a staff or merchant token ("staff:3", "operator"); the subject must exist."""
    from app.auth.tokens import issue_access_token

    token, _ = issue_access_token(subject, role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def citizen_id(db_session) -> int:
    return make_citizen()


@pytest.fixture
def citizen_headers(citizen_id: int) -> dict[str, str]:
    return bearer_for(citizen_id)


@pytest.fixture
def starter_scenarios(db_session) -> dict[str, object]:
    """The five seed scenarios loaded from scenarios/methodologies/*.yaml: {code: ScenarioVersion}."""
    from scenarios.service import load_directory, version_in_force

    load_directory()
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    codes = ("metro_trip", "bus_trip", "bikeshare_ride", "recycling_dropoff", "paperless")
    return {code: version_in_force(code, now) for code in codes}
