"""HTTP routes for scenarios: parse, call the service, dump. No business rules here."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("scenarios", __name__, description="Scenarios: what earns points")
