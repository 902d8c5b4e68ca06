"""Build the test database schema from scratch."""
from __future__ import annotations

from sqlalchemy import text

from app.extensions import db


def create_schema() -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    db.create_all()
