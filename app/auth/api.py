"""HTTP routes for auth: parse, call the service, dump. No business rules here."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("auth", __name__, description="auth")
