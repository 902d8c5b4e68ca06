"""HTTP routes for ledger: parse, call the service, dump. No business rules here."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("ledger", __name__, description="ledger")
