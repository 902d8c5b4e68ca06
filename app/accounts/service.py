"""Citizens: creation, lookup, consents, home district."""
from __future__ import annotations

from app.accounts.models import Citizen
from app.extensions import db


def active_citizen(citizen_id: int) -> Citizen | None:
    citizen = db.session.get(Citizen, citizen_id)
    return citizen if citizen is not None and citizen.status == "active" else None


def create_citizen() -> Citizen:
    citizen = Citizen(status="active")
    db.session.add(citizen)
    db.session.flush()
    return citizen
