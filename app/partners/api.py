"""HTTP routes for partners: parse, call the service, dump. No business rules here."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("partners", __name__, description="partners")
