"""Partners, signed calls and bindings for the partner and ingest tests (real services, real HTTP path)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.partners.service import create_partner
from tests.conftest import bearer_for
from tests.partner_client import signed_request

_serial = itertools.count(1)

BATCH = "/api/v1/partner/events:batch"
BINDINGS = "/api/v1/partner/bindings"


@dataclass(frozen=True)
class PartnerCreds:
    id: int
    code: str
    kind: str
    key_id: str
    secret: str

    def call(self, client, method: str, path: str, payload: Any = None, **kwargs: Any):
        return signed_request(client, method, path, self.key_id, self.secret, payload, **kwargs)

    def push(self, client, events: list[dict[str, Any]], **kwargs: Any):
        return self.call(client, "POST", BATCH, {"events": events}, **kwargs)


def new_partner(kind: str = "metro") -> PartnerCreds:
    """A partner registered through the service (secret encrypted, audit row), flushed."""
    code = f"{kind}-{next(_serial)}"
    partner, key_id, secret = create_partner(code, kind, f"测试{kind}", f"Test {kind}")
    return PartnerCreds(partner.id, code, kind, key_id, secret)


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def metro_event(event_id: str, account_ref: str, **overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": event_id,
        "account_ref": account_ref,
        "scenario": "metro_trip",
        "occurred_at": ago(hours=1),
        "district": "pudong",
        "activity": {"distance_km": "10.57"},
        "claimed_elsewhere": False,
    }
    event.update(overrides)
    return event


def invoice_event(event_id: str, account_ref: str, number: str, **overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": event_id,
        "account_ref": account_ref,
        "scenario": "paperless",
        "occurred_at": ago(hours=1),
        "activity": {"item_type": "e_invoice", "document_number": number},
        "claimed_elsewhere": False,
    }
    event.update(overrides)
    return event


def issue_code(client, citizen_id: int, partner_code: str) -> dict[str, Any]:
    response = client.post("/api/v1/me/bindings/codes", json={"partner_code": partner_code},
                           headers=bearer_for(citizen_id))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bind_through_api(client, partner: PartnerCreds, citizen_id: int, account_ref: str):
    """The whole binding dance: the citizen gets a code, the partner confirms it with its reference."""
    code = issue_code(client, citizen_id, partner.code)["code"]
    return partner.call(client, "POST", BINDINGS, {"binding_code": code, "account_ref": account_ref})
