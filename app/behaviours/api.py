"""HTTP routes for behaviours: parse, call the service, dump. No business rules here."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("behaviours", __name__, description="behaviours")
