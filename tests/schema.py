"""Build the test database schema from scratch, through the migrations (the real thing)."""
from __future__ import annotations

from flask_migrate import upgrade
from sqlalchemy import text

from app.extensions import db


def create_schema() -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade()
