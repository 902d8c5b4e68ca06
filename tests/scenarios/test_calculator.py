"""Calculator: a version's calculation prepared once. `calculate_stored` (crediting's fast path for
activity ingestion already validated and stored) gives exactly what `calculate` gives, and anything
not in the stored form takes the full path with its errors."""
from __future__ import annotations

from decimal import Decimal

import pytest

from scenarios.engine import ActivityError, Calculator, activity_to_json, calculate, validate_activity
from tests.scenarios.test_engine import METRO, PAPERLESS, RECYCLING

ACTIVITIES = [
    (METRO, {"distance_km": "10.57"}),
    (METRO, {"distance_km": "0.1"}),
    (METRO, {"distance_km": "99.999999"}),
    (METRO, {"distance_km": 12}),
    (METRO, {"distance_km": 3.3}),
    (METRO, {"distance_km": "  7.25 "}),
    (METRO, {"distance_km": "1.50000000"}),
    (METRO, {"distance_km": "1E+1"}),
    (RECYCLING, {"material": "paper", "weight_kg": "1.25"}),
    (RECYCLING, {"material": "metal", "weight_kg": "0.333"}),
    (PAPERLESS, {"item_type": "e_invoice", "document_number": "26312000000012345678"}),
    (PAPERLESS, {"item_type": "e_statement", "count": 3, "document_number": "ST2026110001"}),
]


@pytest.mark.parametrize("spec, activity", ACTIVITIES)
def test_the_stored_path_equals_the_full_path(spec, activity) -> None:
    stored = activity_to_json(validate_activity(spec, activity))  # what ingestion writes to the event

    fast = Calculator(spec).calculate_stored(stored)
    full = calculate(spec, stored)

    assert (fast.grams, fast.exact, fast.trace) == (full.grams, full.exact, full.trace)
    assert fast.grams == calculate(spec, activity).grams


@pytest.mark.parametrize(
    "spec, stored",
    [
        (METRO, {"distance_km": 10.57}),  # a number, not the stored text
        (METRO, {"distance_km": "10.57", "speed": "3"}),  # an unknown field
        (METRO, {}),  # a required field missing
        (PAPERLESS, {"item_type": "e_invoice", "document_number": "26312000000012345678"}),  # default not filled in
        (PAPERLESS, {"item_type": "e_invoice", "count": "2", "document_number": "26312000000012345678"}),
        (RECYCLING, {"material": "paper", "weight_kg": "abc"}),
    ],
)
def test_anything_not_in_the_stored_form_takes_the_full_path(spec, stored) -> None:
    calculator = Calculator(spec)
    try:
        expected = calculate(spec, stored)
    except ActivityError as error:
        with pytest.raises(ActivityError) as raised:
            calculator.calculate_stored(stored)
        assert str(raised.value) == str(error)
    else:
        result = calculator.calculate_stored(stored)
        assert (result.grams, result.trace) == (expected.grams, expected.trace)


def test_a_lookup_value_missing_from_the_table_is_the_same_error() -> None:
    spec = RECYCLING
    narrower = type(spec)(**{**spec.__dict__, "parameters": {"factor": {"paper": Decimal(3000)}}})
    stored = {"material": "metal", "weight_kg": "1"}

    with pytest.raises(ActivityError) as full:
        calculate(narrower, stored)
    with pytest.raises(ActivityError) as fast:
        Calculator(narrower).calculate_stored(stored)
    assert str(fast.value) == str(full.value)


def test_the_parameters_part_of_the_trace_follows_the_lookup_key() -> None:
    calculator = Calculator(RECYCLING)

    paper = calculator.calculate_stored({"material": "paper", "weight_kg": "1"})
    metal = calculator.calculate_stored({"material": "metal", "weight_kg": "1"})
    paper_again = calculator.calculate_stored({"material": "paper", "weight_kg": "2"})

    assert paper.trace["parameters"] == {"factor[paper]": "3000"}
    assert metal.trace["parameters"] == {"factor[metal]": "4000"}
    assert paper_again.trace["parameters"] == paper.trace["parameters"]
    assert (paper.grams, metal.grams, paper_again.grams) == (3000, 4000, 6000)
