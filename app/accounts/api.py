"""HTTP routes for accounts: parse, call the service, dump. No business rules here."""
from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("accounts", __name__, description="accounts")
