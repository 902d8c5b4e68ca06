from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from scenarios import definitions
from scenarios.engine import calculate
from scenarios.service import (
    add_scenario_version,
    load_directory,
    scenario_by_code,
    spec_for,
    version_in_force,
)


def test_seed_loads_five_scenarios_once(db_session) -> None:
    first = load_directory()
    assert sum("loaded" in line and line.startswith("scenario") for line in first) == 5
    second = load_directory()
    assert not any("loaded" in line for line in second)


def test_spec_from_database_calculates_the_published_factor(starter_scenarios) -> None:
    spec = spec_for(starter_scenarios["metro_trip"])
    assert calculate(spec, {"distance_km": Decimal("10.57")}).grams == 828


def test_a_new_version_takes_over_from_its_effective_time(starter_scenarios, db_session) -> None:
    v1 = starter_scenarios["bikeshare_ride"]
    doc = definitions.load_file("scenarios/methodologies/bikeshare_ride.yaml")
    scenario_doc = doc.scenarios[0]
    switch = datetime(2026, 12, 1, tzinfo=UTC)
    import dataclasses

    v2_doc = dataclasses.replace(scenario_doc, version=2, effective_from=switch, points_per_gram=Decimal("0.5"))
    from scenarios.models import Methodology

    methodology = db_session.get(Methodology, v1.methodology_id)
    v2 = add_scenario_version(scenario_by_code("bikeshare_ride"), methodology, v2_doc)
    assert version_in_force("bikeshare_ride", datetime(2026, 11, 30, tzinfo=UTC)).id == v1.id
    assert version_in_force("bikeshare_ride", switch).id == v2.id
    assert v1.effective_to == switch
    assert spec_for(v2).points_per_gram == Decimal("0.5")
