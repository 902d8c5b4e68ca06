"""Helpers for crediting tests: partners, bindings and batches written straight into the tables.

Batches are bulk-inserted the way the ingest endpoint leaves them (status "accepted", activity
already validated), so crediting is tested on its own; the ingest tests cover the HTTP side.
"""
from __future__ import annotations

import hashlib
import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from app.behaviours.models import ClaimedItem, EventBatch, InboundEvent
from app.extensions import db
from app.partners.models import Partner, PartnerBinding

_serial = itertools.count(1)


def ref_index(partner_id: int, account_ref: str) -> bytes:
    """A stand-in blind index: crediting only compares the bytes the binding and the event carry."""
    return hashlib.sha256(f"{partner_id}:{account_ref}".encode()).digest()


def make_partner(kind: str = "metro") -> int:
    number = next(_serial)
    partner = Partner(code=f"{kind}-{number}", name_zh=f"伙伴{number}", name_en=f"Partner {number}", kind=kind)
    db.session.add(partner)
    db.session.flush()
    return partner.id


def bind(partner_id: int, citizen_id: int, account_ref: str | None = None) -> str:
    """Bind the citizen to a partner account reference; returns the reference."""
    account_ref = account_ref or f"ref-{citizen_id}"
    db.session.add(
        PartnerBinding(
            partner_id=partner_id,
            citizen_id=citizen_id,
            account_ref_idx=ref_index(partner_id, account_ref),
            account_ref_enc=b"test-only",
        )
    )
    db.session.flush()
    return account_ref


@dataclass
class Ev:
    """One partner event for `make_batch`."""

    account_ref: str
    scenario: str
    occurred_at: datetime | str
    activity: dict[str, Any]
    item_key: str | None = None
    district: str | None = None


def at(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def make_batch(partner_id: int, events: list[Ev]) -> uuid.UUID:
    """An EventBatch with accepted events, bulk-inserted (Core) as the ingest endpoint leaves them."""
    batch_id = uuid.uuid4()
    db.session.add(
        EventBatch(id=batch_id, partner_id=partner_id, event_count=len(events), accepted_count=len(events))
    )
    db.session.flush()
    if events:
        db.session.execute(
            insert(InboundEvent),
            [
                {
                    "batch_id": batch_id,
                    "partner_id": partner_id,
                    "source": "partner",
                    "external_id": f"ext-{next(_serial)}",
                    "account_ref_idx": ref_index(partner_id, event.account_ref),
                    "scenario_code": event.scenario,
                    "occurred_at": at(event.occurred_at) if isinstance(event.occurred_at, str) else event.occurred_at,
                    "district": event.district,
                    "activity": event.activity,
                    "item_key": event.item_key,
                    "status": "accepted",
                }
                for event in events
            ],
        )
    return batch_id


def declare(citizen_id: int, scenario: str, occurred_at: str, activity: dict[str, Any], item_key: str | None) -> int:
    """A citizen's self-declared event, its item claimed by the declaration (as the declare endpoint does)."""
    event = InboundEvent(
        source="citizen",
        external_id=f"decl-{next(_serial)}",
        citizen_id=citizen_id,
        scenario_code=scenario,
        occurred_at=at(occurred_at),
        activity=activity,
        item_key=item_key,
        status="accepted",
    )
    db.session.add(event)
    db.session.flush()
    if item_key is not None:
        db.session.add(ClaimedItem(item_key=item_key, event_id=event.id))
        db.session.flush()
    return event.id


def outcomes(batch_id: uuid.UUID) -> list[InboundEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(InboundEvent)
            .where(InboundEvent.batch_id == batch_id)
            .order_by(InboundEvent.occurred_at, InboundEvent.id)
        )
    )


def balance(citizen_id: int) -> int:
    value = db.session.execute(
        text("SELECT credits_posted - debits_posted FROM ledger_accounts WHERE citizen_id = :c"), {"c": citizen_id}
    ).scalar()
    return int(value or 0)


def usage(citizen_id: int, scenario_code: str, day: str) -> tuple[Decimal, int, int, int] | None:
    row = db.session.execute(
        text(
            "SELECT d.quantity, d.events, d.grams, d.points FROM daily_usage d "
            "JOIN scenarios s ON s.id = d.scenario_id "
            "WHERE d.citizen_id = :c AND s.code = :code AND d.day = :day"
        ),
        {"c": citizen_id, "code": scenario_code, "day": datetime.fromisoformat(day).date()},
    ).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


@pytest.fixture
def loaded_scenarios(committed) -> dict[str, Any]:
    """The five starter scenarios, committed (for tests whose other connections must see them)."""
    from scenarios.service import load_directory, version_in_force

    load_directory()
    db.session.commit()
    now = datetime.now(UTC)
    codes = ("metro_trip", "bus_trip", "bikeshare_ride", "recycling_dropoff", "paperless")
    return {code: version_in_force(code, now) for code in codes}


def many_citizens(partner_id: int, count: int, trajectory_scenarios: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """`count` consenting citizens bound to the partner, bulk-inserted; returns (citizen_id, account_ref)."""
    from app.accounts.models import Citizen, Consent
    from tests.conftest import PRIVACY_TERMS_TEST_VERSION

    ids = list(db.session.scalars(insert(Citizen).returning(Citizen.id), [{"status": "active"}] * count))
    consents = [{"citizen_id": c, "kind": "privacy", "terms_version": PRIVACY_TERMS_TEST_VERSION} for c in ids]
    consents += [
        {"citizen_id": c, "kind": "trajectory", "scenario_code": code, "terms_version": PRIVACY_TERMS_TEST_VERSION}
        for c in ids
        for code in trajectory_scenarios
    ]
    db.session.execute(insert(Consent), consents)
    refs = [(c, f"bulk-{partner_id}-{c}") for c in ids]
    db.session.execute(
        insert(PartnerBinding),
        [
            {"partner_id": partner_id, "citizen_id": c, "account_ref_idx": ref_index(partner_id, ref),
             "account_ref_enc": b"test-only"}
            for c, ref in refs
        ],
    )
    return refs
