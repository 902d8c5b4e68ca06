"""Anti-fraud plausibility rules applied while crediting (SECURITY.md §Anti-fraud, BRIEF R4.3).

A rule that fires holds the event as `flagged` with a reason: it waits in the review queue and is
not credited. Thresholds are *starting values* to tune on real data, so they live in one table
keyed by scenario code; a scenario without an entry has no plausibility rule.

Two kinds of rule:
- per event (`implausible`): pure, on the validated activity (distance, duration, speed);
- per citizen (`SAME_MINUTE_SCENARIOS`): no two trips of one citizen in one transport scenario
  start in the same minute — the same trip reported twice, or a fabricated one. The crediting
  step checks it in SQL against events already recorded, after it has locked the citizen's usage
  rows, so two batches racing for the same citizen cannot both pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Plausibility:
    """Bounds on one trip; None means the bound is not checked."""

    min_duration_min: Decimal | None = None
    min_distance_km: Decimal | None = None
    max_speed_kmh: Decimal | None = None


# SECURITY.md (start): bike-share >= 2 min, >= 300 m, average <= 25 km/h.
PLAUSIBILITY: dict[str, Plausibility] = {
    "bikeshare_ride": Plausibility(
        min_duration_min=Decimal(2),
        min_distance_km=Decimal("0.3"),
        max_speed_kmh=Decimal(25),
    ),
}

# Transport scenarios in which one citizen cannot start two trips in the same minute.
SAME_MINUTE_SCENARIOS: frozenset[str] = frozenset({"metro_trip", "bus_trip", "bikeshare_ride"})

# Statuses of earlier events that count as "a trip already recorded" for the same-minute rule.
RECORDED_STATUSES: tuple[str, ...] = ("credited", "capped", "flagged")


def implausible(scenario_code: str, activity: dict) -> str | None:
    """The reason an event is implausible for its scenario, or None. `activity` is validated (Decimals)."""
    rule = PLAUSIBILITY.get(scenario_code)
    if rule is None:
        return None
    distance = _decimal(activity.get("distance_km"))
    duration = _decimal(activity.get("duration_min"))
    if rule.min_distance_km is not None and distance is not None and distance < rule.min_distance_km:
        return f"implausible: distance {distance} km is under {rule.min_distance_km} km"
    if duration is None:
        return None
    if rule.min_duration_min is not None and duration < rule.min_duration_min:
        return f"implausible: duration {duration} min is under {rule.min_duration_min} min"
    if rule.max_speed_kmh is not None and distance is not None and duration > 0:
        speed = distance * 60 / duration
        if speed > rule.max_speed_kmh:
            return f"implausible: average speed {speed:.1f} km/h is over {rule.max_speed_kmh} km/h"
    return None


SAME_MINUTE_REASON = "duplicate trip: another trip of this citizen in this scenario starts in the same minute"


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))
