"""Crediting (BRIEF R3.3, R4.3): calculation, fractional points, caps per Shanghai day and month,
versions in force, consent, unique items, anti-fraud, and reruns. Real PostgreSQL, rolled back."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from sqlalchemy import func, select, text

from app import jobs
from app.accounts.models import Consent
from app.behaviours.crediting import credit_batch, credit_events
from app.behaviours.models import InboundEvent
from app.extensions import db
from app.ledger.models import LedgerTransfer
from app.ledger.service import check_invariants, transfer_explanation, transfer_id_for
from app.partners.models import PartnerBinding
from scenarios import definitions
from scenarios.models import Methodology
from scenarios.service import add_scenario_version, scenario_by_code
from tests.behaviours.conftest import Ev, balance, bind, declare, make_batch, make_partner, outcomes, usage
from tests.conftest import make_citizen

TRANSPORT = ("metro_trip", "bus_trip", "bikeshare_ride")
DAY = "2026-11-26"


@pytest.fixture
def world(db_session, starter_scenarios):
    """One partner per kind and a citizen bound to each, with privacy and trajectory consents."""
    partners = {kind: make_partner(kind) for kind in ("metro", "bus", "bikeshare", "recycling", "einvoice")}
    citizen = make_citizen(trajectory_scenarios=TRANSPORT)
    refs = {kind: bind(partner_id, citizen) for kind, partner_id in partners.items()}
    return {"partners": partners, "citizen": citizen, "refs": refs, "versions": starter_scenarios}


def metro(world, when: str, km: str = "10.57", ref: str | None = None) -> Ev:
    return Ev(ref or world["refs"]["metro"], "metro_trip", when, {"distance_km": km})


def run(world, kind: str, events: list[Ev]) -> list[InboundEvent]:
    batch_id = make_batch(world["partners"][kind], events)
    credit_batch(batch_id)
    return outcomes(batch_id)


def transfers_for(event_ids: list[int]) -> list[LedgerTransfer]:
    return list(db.session.scalars(select(LedgerTransfer).where(LedgerTransfer.event_id.in_(event_ids))))


# ---- calculation ------------------------------------------------------------------------------


def test_metro_trip_of_10_57_km_credits_828_grams_and_828_points(world) -> None:
    [event] = run(world, "metro", [metro(world, f"{DAY}T01:00:00Z")])

    assert (event.status, event.grams, event.credited_grams, event.capped_grams, event.points) == (
        "credited", 828, 828, 0, 828,
    )
    assert event.citizen_id == world["citizen"]
    assert event.scenario_version_id == world["versions"]["metro_trip"].id
    assert event.transfer_id == transfer_id_for(f"earn:event:{event.id}")
    assert balance(world["citizen"]) == 828
    assert check_invariants() == []


def test_the_ledger_entry_explains_itself(world) -> None:
    [event] = run(world, "metro", [Ev(world["refs"]["metro"], "metro_trip", f"{DAY}T01:00:00Z",
                                      {"distance_km": "10.57"}, district="310104")])
    transfer = db.session.get(LedgerTransfer, event.transfer_id)

    assert transfer.amount == 828 and transfer.citizen_id == world["citizen"]
    assert transfer_explanation(transfer.id) == {
        "scenario_code": "metro_trip",
        "scenario_version": 1,
        "methodology_code": "SHCI-P-METRO",
        "methodology_version": 1,
        "activity": {"distance_km": "10.57"},
        "formula": "distance_km * net_g_per_km",
        "parameters": {"net_g_per_km": "78.4"},
        "exact": "828.688",
        "grams": 828,
        "credited_grams": 828,
        "capped_grams": 0,
        "cap_applied": None,
        "points_per_gram": "1",
        "occurred_at": "2026-11-26T01:00:00+00:00",
        "district": "310104",
    }


def test_bike_share_ride_of_0_9_km_credits_83_grams(world) -> None:
    [event] = run(world, "bikeshare", [
        Ev(world["refs"]["bikeshare"], "bikeshare_ride", f"{DAY}T02:00:00Z", {"distance_km": "0.9", "duration_min": 6}),
    ])
    assert (event.status, event.grams, event.points) == ("credited", 83, 83)


def test_recycling_uses_the_materials_lookup_table(world) -> None:
    ref = world["refs"]["recycling"]
    paper, glass = run(world, "recycling", [
        Ev(ref, "recycling_dropoff", f"{DAY}T02:00:00Z", {"material": "paper", "weight_kg": "2.5"}),
        Ev(ref, "recycling_dropoff", f"{DAY}T02:30:00Z", {"material": "glass", "weight_kg": "1.2"}),
    ])
    assert (paper.grams, glass.grams) == (7500, 300)
    details = transfer_explanation(glass.transfer_id)
    assert details["parameters"] == {"factor[glass]": "250"}


def test_paperless_e_invoice_credits_5_grams(world) -> None:
    [event] = run(world, "einvoice", [
        Ev(world["refs"]["einvoice"], "paperless", f"{DAY}T03:00:00Z",
           {"item_type": "e_invoice", "document_number": "12345678901234567890"}, item_key="einv:12345678901234567890"),
    ])
    assert (event.status, event.grams, event.points) == ("credited", 5, 5)


def test_a_fractional_rate_applies_to_the_running_daily_total(world) -> None:
    world["versions"]["paperless"].points_per_gram = Decimal("0.1")
    db.session.flush()
    events = [
        Ev(world["refs"]["einvoice"], "paperless", f"{DAY}T03:0{i}:00Z",
           {"item_type": "e_invoice", "document_number": f"9876543210987654321{i}"}, item_key=f"einv:{i}")
        for i in range(5)
    ]
    credited = run(world, "einvoice", events)

    assert [e.points for e in credited] == [0, 1, 0, 1, 0]
    assert [e.status for e in credited] == ["credited"] * 5
    assert [e.transfer_id is not None for e in credited] == [False, True, False, True, False]
    assert usage(world["citizen"], "paperless", DAY) == (Decimal(5), 5, 25, 2)
    assert balance(world["citizen"]) == 2


# ---- caps -------------------------------------------------------------------------------------


def test_the_eleventh_metro_trip_on_a_shanghai_day_is_capped(world) -> None:
    events = run(world, "metro", [metro(world, f"{DAY}T0{i // 6}:{i % 6}0:00Z") for i in range(11)])

    assert [e.status for e in events] == ["credited"] * 10 + ["capped"]
    last = events[-1]
    assert (last.grams, last.credited_grams, last.capped_grams, last.points, last.transfer_id) == (828, 0, 828, 0, None)
    assert usage(world["citizen"], "metro_trip", DAY) == (Decimal(10), 10, 8280, 8280)
    assert balance(world["citizen"]) == 8280


def test_caps_hold_across_batches(world) -> None:
    run(world, "metro", [metro(world, f"{DAY}T01:0{i}:00Z") for i in range(8)])
    events = run(world, "metro", [metro(world, f"{DAY}T02:0{i}:00Z") for i in range(4)])
    assert [e.status for e in events] == ["credited", "credited", "capped", "capped"]


def test_a_5_kg_drop_with_18_kg_used_credits_2_kg(world) -> None:
    ref = world["refs"]["recycling"]
    first, second = run(world, "recycling", [
        Ev(ref, "recycling_dropoff", f"{DAY}T02:00:00Z", {"material": "paper", "weight_kg": "18"}),
        Ev(ref, "recycling_dropoff", f"{DAY}T03:00:00Z", {"material": "plastic", "weight_kg": "5"}),
    ])
    assert (first.credited_grams, first.capped_grams) == (54000, 0)
    assert (second.status, second.grams, second.credited_grams, second.capped_grams) == ("credited", 4500, 1800, 2700)
    details = transfer_explanation(second.transfer_id)
    assert details["cap_applied"] == {"unit": "weight_kg", "per_day": "20", "per_month": None}
    assert usage(world["citizen"], "recycling_dropoff", DAY)[0] == Decimal(20)


def test_a_partly_fitting_event_credits_floored_grams(world) -> None:
    ref = world["refs"]["recycling"]
    _, glass = run(world, "recycling", [
        Ev(ref, "recycling_dropoff", f"{DAY}T02:00:00Z", {"material": "paper", "weight_kg": "18.3"}),
        Ev(ref, "recycling_dropoff", f"{DAY}T03:00:00Z", {"material": "glass", "weight_kg": "3.0033"}),
    ])
    # 3.0033 kg x 250 = 750.825 -> 750 g; 1.7 of 3.0033 kg fit: 750 x 1.7 / 3.0033 = 424.53 -> 424
    assert (glass.grams, glass.credited_grams, glass.capped_grams) == (750, 424, 326)


def test_the_monthly_cap_applies_across_days(world) -> None:
    world["versions"]["metro_trip"].cap_per_month = Decimal(12)
    db.session.flush()
    first = run(world, "metro", [metro(world, f"2026-11-0{d}T0{i}:00:00Z") for d in (2, 3) for i in range(6)])
    second = run(world, "metro", [metro(world, "2026-11-05T01:00:00Z"), metro(world, "2026-12-01T01:00:00Z")])

    assert [e.status for e in first] == ["credited"] * 12
    assert [e.status for e in second] == ["capped", "credited"]  # December is a new month


@pytest.mark.parametrize("skew_minutes", [-5, 0, 5])
def test_shanghai_midnight_separates_days_for_the_caps(world, skew_minutes) -> None:
    """Days come from occurred_at in SQL, never from the app's clock: a skewed clock changes nothing."""
    clock = time_machine.travel(datetime(2026, 11, 26, 16, 0, tzinfo=UTC) + timedelta(minutes=skew_minutes))
    clock.start()
    try:
        _midnight_case(world)
    finally:
        clock.stop()


def _midnight_case(world) -> None:
    # 15:59:59.999Z is 23:59:59.999 on the 26th in Shanghai; 16:00:00.000Z is 00:00 on the 27th.
    events = [metro(world, f"{DAY}T0{i}:00:00Z") for i in range(9)]
    events += [metro(world, f"{DAY}T15:59:59.999Z"), metro(world, f"{DAY}T16:00:00.000Z")]
    outcome = run(world, "metro", events)

    assert [e.status for e in outcome] == ["credited"] * 11
    assert usage(world["citizen"], "metro_trip", "2026-11-26")[0] == Decimal(10)
    assert usage(world["citizen"], "metro_trip", "2026-11-27")[0] == Decimal(1)
    capped = run(world, "metro", [metro(world, f"{DAY}T15:30:00Z"), metro(world, f"{DAY}T16:30:00Z")])
    assert [e.status for e in capped] == ["capped", "credited"]


# ---- versions in force ------------------------------------------------------------------------


def test_the_version_in_force_at_the_events_time_applies(world) -> None:
    v1 = world["versions"]["bikeshare_ride"]
    doc = definitions.load_file("scenarios/methodologies/bikeshare_ride.yaml")
    methodology_v2 = dataclasses.replace(
        doc,
        version=2,
        parameters=[dataclasses.replace(doc.parameters[0], value=Decimal(100))],
    )
    methodology = Methodology(
        code=doc.code, version=2, type=doc.type, title=dict(doc.title), status=doc.status,
        definition=definitions.methodology_to_json(methodology_v2),
    )
    db.session.add(methodology)
    db.session.flush()
    switch = datetime(2026, 12, 1, tzinfo=UTC)
    v2 = add_scenario_version(
        scenario_by_code("bikeshare_ride"), methodology,
        dataclasses.replace(doc.scenarios[0], version=2, effective_from=switch),
    )
    ref = world["refs"]["bikeshare"]
    before, after = run(world, "bikeshare", [
        Ev(ref, "bikeshare_ride", "2026-11-30T15:59:59Z", {"distance_km": "2", "duration_min": 10}),
        Ev(ref, "bikeshare_ride", "2026-12-01T00:00:00Z", {"distance_km": "2", "duration_min": 10}),
    ])

    assert (before.scenario_version_id, before.grams) == (v1.id, 186)  # 2 x 93.3
    assert (after.scenario_version_id, after.grams) == (v2.id, 200)  # 2 x 100
    details = transfer_explanation(after.transfer_id)
    assert (details["scenario_version"], details["methodology_version"]) == (2, 2)


def test_an_event_before_any_version_is_rejected(world) -> None:
    [event] = run(world, "metro", [metro(world, "2025-12-31T15:00:00Z")])
    assert event.status == "rejected" and "no version of metro_trip in force" in event.reason


def test_activity_the_version_cannot_accept_is_rejected(world) -> None:
    [event] = run(world, "metro", [metro(world, f"{DAY}T01:00:00Z", km="0")])
    assert event.status == "rejected" and "distance_km" in event.reason
    assert event.transfer_id is None


def test_a_partner_may_report_only_its_own_kind_of_scenario(world) -> None:
    [event] = run(world, "bus", [Ev(world["refs"]["bus"], "metro_trip", f"{DAY}T01:00:00Z", {"distance_km": "5"})])
    assert event.status == "rejected" and "partner kind bus" in event.reason


# ---- accounts and consent ---------------------------------------------------------------------


def test_an_unbound_account_reference_is_unknown_account(world) -> None:
    [event] = run(world, "metro", [metro(world, f"{DAY}T01:00:00Z", ref="nobody")])
    assert (event.status, event.citizen_id, event.points) == ("unknown_account", None, None)


def test_an_unbound_binding_stops_crediting(world) -> None:
    binding = db.session.scalars(
        select(PartnerBinding).where(PartnerBinding.partner_id == world["partners"]["metro"])
    ).one()
    binding.unbound_at = datetime.now(UTC)
    db.session.flush()
    [event] = run(world, "metro", [metro(world, f"{DAY}T01:00:00Z")])
    assert event.status == "unknown_account"


def test_without_privacy_consent_nothing_is_credited_or_linked(world) -> None:
    citizen = make_citizen(privacy_consent=False, trajectory_scenarios=TRANSPORT)
    ref = bind(world["partners"]["recycling"], citizen, "no-consent")
    [event] = run(world, "recycling", [Ev(ref, "recycling_dropoff", f"{DAY}T02:00:00Z",
                                          {"material": "paper", "weight_kg": "1"})])
    assert (event.status, event.citizen_id) == ("no_consent", None)
    assert balance(citizen) == 0


def test_trips_need_the_separate_trajectory_consent(world) -> None:
    citizen = make_citizen(trajectory_scenarios=("bus_trip",))
    ref = bind(world["partners"]["metro"], citizen, "no-trajectory")
    [event] = run(world, "metro", [metro(world, f"{DAY}T01:00:00Z", ref=ref)])
    assert event.status == "no_consent" and "trajectory" in event.reason


def test_withdrawing_consent_stops_crediting_at_once(world) -> None:
    [before] = run(world, "metro", [metro(world, f"{DAY}T01:00:00Z")])
    consent = db.session.scalars(
        select(Consent).where(Consent.citizen_id == world["citizen"], Consent.kind == "privacy")
    ).one()
    consent.withdrawn_at = datetime.now(UTC)
    db.session.flush()
    [after] = run(world, "metro", [metro(world, f"{DAY}T02:00:00Z")])

    assert (before.status, after.status) == ("credited", "no_consent")
    assert balance(world["citizen"]) == 828


# ---- unique items -----------------------------------------------------------------------------


def invoice(number: str) -> dict:
    return {"item_type": "e_invoice", "document_number": number}


def test_an_item_declared_by_the_citizen_is_not_credited_again_from_a_partner(world) -> None:
    number = "11112222333344445555"
    declared = declare(world["citizen"], "paperless", f"{DAY}T01:00:00Z", invoice(number), f"einv:{number}")
    assert credit_events([declared])["credited"] == 1
    [partner_event] = run(world, "einvoice", [
        Ev(world["refs"]["einvoice"], "paperless", f"{DAY}T01:05:00Z", invoice(number), item_key=f"einv:{number}"),
    ])

    assert partner_event.status == "duplicate_item"
    assert db.session.get(InboundEvent, declared).status == "credited"
    assert balance(world["citizen"]) == 5


def test_the_same_item_twice_in_a_batch_is_credited_once(world) -> None:
    number = "99998888777766665555"
    other = make_citizen()
    other_ref = bind(world["partners"]["einvoice"], other, "other")
    events = run(world, "einvoice", [
        Ev(world["refs"]["einvoice"], "paperless", f"{DAY}T01:00:00Z", invoice(number), item_key=f"einv:{number}"),
        Ev(other_ref, "paperless", f"{DAY}T01:01:00Z", invoice(number), item_key=f"einv:{number}"),
    ])
    assert [e.status for e in events] == ["credited", "duplicate_item"]


def test_a_refused_declaration_gives_its_item_back(world) -> None:
    number = "12121212121212121212"
    consent = db.session.scalars(
        select(Consent).where(Consent.citizen_id == world["citizen"], Consent.kind == "privacy")
    ).one()
    declared = declare(world["citizen"], "paperless", f"{DAY}T01:00:00Z", invoice(number), f"einv:{number}")
    consent.withdrawn_at = datetime.now(UTC)
    db.session.flush()
    credit_events([declared])
    assert db.session.get(InboundEvent, declared).status == "no_consent"

    other = make_citizen()
    ref = bind(world["partners"]["einvoice"], other, "other")
    [pushed] = run(world, "einvoice", [Ev(ref, "paperless", f"{DAY}T02:00:00Z", invoice(number), f"einv:{number}")])
    assert pushed.status == "credited"


def test_a_self_declared_transport_trip_is_refused(world) -> None:
    declared = declare(world["citizen"], "metro_trip", f"{DAY}T01:00:00Z", {"distance_km": "5"}, None)
    credit_events([declared])
    event = db.session.get(InboundEvent, declared)
    assert event.status == "rejected" and "self-declaration" in event.reason


# ---- anti-fraud -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("activity", "reason"),
    [
        ({"distance_km": "0.2", "duration_min": 5}, "distance"),
        ({"distance_km": "0.5", "duration_min": "1.5"}, "duration"),
        ({"distance_km": "10", "duration_min": 15}, "speed"),  # 40 km/h
    ],
)
def test_an_implausible_bike_ride_is_flagged(world, activity, reason) -> None:
    [event] = run(world, "bikeshare", [Ev(world["refs"]["bikeshare"], "bikeshare_ride", f"{DAY}T02:00:00Z", activity)])
    assert event.status == "flagged" and reason in event.reason
    assert event.points is None and event.transfer_id is None


def test_two_trips_starting_in_the_same_minute_are_flagged(world) -> None:
    first, second = run(world, "metro", [metro(world, f"{DAY}T01:00:05Z"), metro(world, f"{DAY}T01:00:40Z")])
    [third] = run(world, "metro", [metro(world, f"{DAY}T01:00:59Z")])
    assert [first.status, second.status, third.status] == ["credited", "flagged", "flagged"]
    assert "same minute" in second.reason


def test_a_flagged_ride_approved_by_a_reviewer_is_credited(world) -> None:
    [event] = run(world, "bikeshare", [Ev(world["refs"]["bikeshare"], "bikeshare_ride", f"{DAY}T02:00:00Z",
                                          {"distance_km": "10", "duration_min": 15})])
    assert event.status == "flagged"
    event.status = "accepted"  # what the review service does on approval
    db.session.flush()
    credit_events([event.id], reviewed=True)
    db.session.refresh(event)
    assert (event.status, event.points) == ("credited", 933)


# ---- reruns -----------------------------------------------------------------------------------


def test_a_job_run_twice_credits_once(world) -> None:
    batch_id = make_batch(world["partners"]["metro"], [metro(world, f"{DAY}T0{i}:00:00Z") for i in range(3)])
    first = jobs.credit_batch(str(batch_id))
    second = jobs.credit_batch(str(batch_id))

    assert (first["credited"], first["points"]) == (3, 3 * 828)
    assert second == {"events": 0}
    assert db.session.scalar(select(func.count()).select_from(LedgerTransfer)) == 3
    assert balance(world["citizen"]) == 3 * 828
    assert check_invariants() == []
    completed = db.session.execute(text("SELECT completed_at FROM event_batches WHERE id = :id"), {"id": batch_id})
    assert completed.scalar() is not None


def test_rerunning_after_outcomes_were_lost_posts_no_second_transfer(world) -> None:
    """Even if events were somehow reset to accepted, the ledger keys stop a double credit."""
    batch_id = make_batch(world["partners"]["metro"], [metro(world, f"{DAY}T01:00:00Z")])
    credit_batch(batch_id)
    for statement in (
        "UPDATE inbound_events SET status = 'accepted' WHERE batch_id = :id",
        "UPDATE event_batches SET completed_at = NULL WHERE id = :id",
        "UPDATE daily_usage SET quantity = 0, events = 0, grams = 0, points = 0",
    ):
        db.session.execute(text(statement), {"id": batch_id})
    credit_batch(batch_id)
    assert db.session.scalar(select(func.count()).select_from(LedgerTransfer)) == 1
    assert balance(world["citizen"]) == 828
    assert check_invariants() == []
