"""The calculation engine: safe formulas, exact Decimal grams, activity validation, points and caps."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from scenarios.engine import (
    ActivityError,
    ActivityField,
    FormulaError,
    ScenarioSpec,
    activity_to_json,
    calculate,
    cap_quantity,
    capped_grams,
    compile_formula,
    points_for,
    validate_activity,
)

D = Decimal


def spec(formula: str, fields: tuple[ActivityField, ...], parameters: dict, **extra) -> ScenarioSpec:
    return ScenarioSpec(
        code="test", version=1, methodology_code="SHCI-P-TEST", methodology_version=1,
        fields=fields, formula=formula, parameters=parameters, **extra,
    )


DISTANCE = ActivityField("distance_km", "decimal", unit="km", min=D("0.1"), max=D(100))
METRO = spec("distance_km * net_g_per_km", (DISTANCE,), {"net_g_per_km": D("78.4")})
BIKE = spec("distance_km * net_g_per_km", (DISTANCE,), {"net_g_per_km": D("93.3")})
MATERIAL = ActivityField("material", "category", allowed=("paper", "plastic", "metal"))
WEIGHT = ActivityField("weight_kg", "decimal", unit="kg", min=D("0.01"), max=D(50))
RECYCLING = spec(
    "weight_kg * factor[material]",
    (MATERIAL, WEIGHT),
    {"factor": {"paper": D(3000), "plastic": D(900), "metal": D(4000)}},
    cap_unit="weight_kg",
    cap_per_day=D(20),
)
PAPERLESS = spec(
    "count * factor[item_type]",
    (
        ActivityField("item_type", "category", allowed=("e_invoice", "e_statement")),
        ActivityField("count", "integer", required=False, default=1, min=D(1), max=D(10)),
        ActivityField(
            "document_number", "string", pattern=r"^[0-9A-Za-z]{8,32}$", unique=True,
            patterns_by=("item_type", (("e_invoice", r"^\d{20}$"),)),
        ),
    ),
    {"factor": {"e_invoice": D(5), "e_statement": D(24)}},
    cap_unit="count",
)

FIELDS = {"distance_km", "weight_kg", "material"}
PARAMETERS = {"net_g_per_km"}
TABLES = {"factor"}


def check(formula: str) -> None:
    compile_formula(formula, FIELDS, PARAMETERS, TABLES)


# ---------------------------------------------------------------------------------------------
# The formula language refuses everything but arithmetic over declared names

@pytest.mark.parametrize(
    ("formula", "complaint"),
    [
        ("__import__('os')", "call to '__import__'"),
        ("().__class__", "attribute access"),
        ("distance_km.real", "attribute access"),
        ("open('/etc/passwd')", "call to 'open'"),
        ("secret_key * 2", "unknown name 'secret_key'"),
        ("2 ** 1000000", "exponent 1000000 is too large"),
        ("distance_km ** 99", "exponent 99 is too large"),
        ("distance_km ** distance_km", "literal whole number"),
        ("distance_km ** 0.5", "literal whole number"),
        ("'abc'", "string literal"),
        ("f'{distance_km}'", "string literal"),
        ("lambda: 1", "lambda"),
        ("[x for x in (1, 2)]", "comprehension"),
        ("distance_km > 1", "comparison"),
        ("distance_km and 1", "boolean operator"),
        ("1 if distance_km else 2", "conditional expression"),
        ("max(distance_km, default=1)", "keyword arguments"),
        ("max(*distance_km)", "starred argument"),
        ("distance_km // 2", "operator FloorDiv"),
        ("distance_km % 2", "operator Mod"),
        ("~distance_km", "unary operator Invert"),
        ("factor", "must be indexed"),
        ("factor['paper']", "indexed by a category field"),
        ("net_g_per_km[material]", "not a declared lookup table"),
        ("factor[undeclared]", "lookup key 'undeclared'"),
        ("True * distance_km", "constant True"),
        ("1e999 * distance_km", "not a finite number"),
        ("distance_km *", "not valid syntax"),
        ("", "empty"),
        ("distance_km + " * 40 + "1", "longer than 500"),
    ],
)
def test_unsafe_or_invalid_formulas_are_refused_with_the_reason(formula, complaint):
    with pytest.raises(FormulaError, match=complaint.replace("(", r"\(").replace("*", r"\*")):
        check(formula)


def test_allowed_formula_constructs_compile():
    check("-(distance_km - 1) * +net_g_per_km / 2 + distance_km ** 2 - distance_km ** -1")
    check("min(weight_kg, 20) * factor[material] + max(0, distance_km, 1.5)")


def test_a_name_declared_as_both_field_and_parameter_is_refused():
    with pytest.raises(FormulaError, match="both as field and parameter"):
        compile_formula("distance_km", {"distance_km"}, {"distance_km"})


def test_deeply_nested_formula_is_refused_not_crashing():
    with pytest.raises(FormulaError):
        check("(" * 240 + "1" + ")" * 240)


# ---------------------------------------------------------------------------------------------
# Exact Decimal arithmetic, floored to whole grams

def test_worked_check_bike_and_metro_floor_to_whole_grams():
    """METHODOLOGIES.md: 0.9 km bike-share + 10.57 km metro at Wuhan's factors = 83 g + 828 g."""
    bike = calculate(BIKE, {"distance_km": "0.9"})
    metro = calculate(METRO, {"distance_km": 10.57})
    assert (bike.exact, bike.grams) == (D("83.97"), 83)
    assert (metro.exact, metro.grams) == (D("828.688"), 828)


def test_decimal_avoids_the_float_error_that_loses_a_gram():
    assert 0.3 / 0.1 == 2.9999999999999996  # the float trap
    per_tenth = spec("distance_km / 0.1", (DISTANCE,), {})
    assert calculate(per_tenth, {"distance_km": 0.3}).grams == 3
    assert int(0.57 * 100) == 56
    hundred = spec("distance_km * 100", (DISTANCE,), {})
    assert calculate(hundred, {"distance_km": 0.57}).grams == 57


def test_negative_result_credits_zero_grams_but_keeps_the_exact_value():
    worse = spec("distance_km * (baseline - project)", (DISTANCE,), {"baseline": D(10), "project": D(30)})
    result = calculate(worse, {"distance_km": 2})
    assert result.grams == 0
    assert result.exact == D(-40)


def test_lookup_table_uses_the_category_value_and_traces_the_resolved_key():
    result = calculate(RECYCLING, {"material": "paper", "weight_kg": "1.25"})
    assert result.grams == 3750
    assert result.trace["parameters"] == {"factor[paper]": "3000"}
    assert calculate(RECYCLING, {"material": "metal", "weight_kg": "0.333"}).grams == 1332


def test_min_and_max():
    capped = spec("min(distance_km, 5) * rate", (DISTANCE,), {"rate": D(10)})
    floored = spec("max(distance_km * rate - 20, 0)", (DISTANCE,), {"rate": D(10)})
    assert calculate(capped, {"distance_km": 8}).grams == 50
    assert calculate(capped, {"distance_km": "2.5"}).grams == 25
    assert calculate(floored, {"distance_km": 1}).exact == 0
    assert calculate(floored, {"distance_km": 3}).grams == 10


def test_powers_and_unary_signs():
    square = spec("(-distance_km) ** 2 + distance_km ** -1", (DISTANCE,), {})
    assert calculate(square, {"distance_km": 2}).exact == D("4.5")
    precedence = spec("-distance_km ** 2", (DISTANCE,), {})  # as in Python: -(d ** 2)
    assert calculate(precedence, {"distance_km": 2}).exact == D(-4)


def test_division_by_zero_is_an_activity_error_not_a_crash():
    per = spec("100 / (distance_km - 1)", (DISTANCE,), {})
    with pytest.raises(ActivityError, match="division by zero"):
        calculate(per, {"distance_km": 1})
    inverse = spec("(distance_km - 1) ** -2", (DISTANCE,), {})
    with pytest.raises(ActivityError):
        calculate(inverse, {"distance_km": 1})


def test_a_formula_naming_something_the_spec_lacks_raises_formula_error():
    broken = spec("distance_km * missing_parameter", (DISTANCE,), {})
    with pytest.raises(FormulaError, match="missing_parameter"):
        calculate(broken, {"distance_km": 1})


def test_trace_is_json_and_explains_the_result():
    result = calculate(METRO, {"distance_km": 10.57})
    assert json.loads(json.dumps(result.trace)) == {
        "scenario": "test",
        "scenario_version": 1,
        "methodology": "SHCI-P-TEST",
        "methodology_version": 1,
        "formula": "distance_km * net_g_per_km",
        "activity": {"distance_km": "10.57"},
        "parameters": {"net_g_per_km": "78.4"},
        "exact": "828.688",
        "grams": 828,
    }


def test_trace_only_lists_parameters_the_formula_uses():
    extra = spec("distance_km * used", (DISTANCE,), {"used": D(2), "unused": D(3)})
    assert calculate(extra, {"distance_km": 1}).trace["parameters"] == {"used": "2"}


def test_integer_fields_and_defaults_in_formulas():
    result = calculate(PAPERLESS, {"item_type": "e_statement", "document_number": "ABCD1234"})
    assert result.grams == 24
    assert result.trace["activity"] == {"item_type": "e_statement", "count": 1, "document_number": "ABCD1234"}
    three = {"item_type": "e_statement", "count": "3", "document_number": "ABCD1234"}
    assert calculate(PAPERLESS, three).grams == 72


# ---------------------------------------------------------------------------------------------
# Activity validation

def test_validate_activity_normalises_numbers_to_decimal_and_fills_defaults():
    assert validate_activity(METRO, {"distance_km": 10.57}) == {"distance_km": D("10.57")}
    assert validate_activity(METRO, {"distance_km": 3}) == {"distance_km": D(3)}
    assert validate_activity(METRO, {"distance_km": " 2.500000000 "}) == {"distance_km": D("2.5")}
    normalised = validate_activity(PAPERLESS, {"item_type": "e_invoice", "document_number": "1" * 20})
    assert normalised["count"] == 1


def test_validate_activity_is_idempotent():
    once = validate_activity(RECYCLING, {"material": "paper", "weight_kg": 1.5})
    assert validate_activity(RECYCLING, once) == once


@pytest.mark.parametrize(
    ("activity", "field", "reason"),
    [
        ({"distance_km": 1, "speed": 3}, "speed", "unknown field"),
        ({}, "distance_km", "is required"),
        ({"distance_km": None}, "distance_km", "is required"),
        ({"distance_km": True}, "distance_km", "not true/false"),
        ({"distance_km": "NaN"}, "distance_km", "finite"),
        ({"distance_km": float("nan")}, "distance_km", "finite"),
        ({"distance_km": "Infinity"}, "distance_km", "finite"),
        ({"distance_km": float("inf")}, "distance_km", "finite"),
        ({"distance_km": "ten"}, "distance_km", "must be a number"),
        ({"distance_km": [1]}, "distance_km", "must be a number"),
        ({"distance_km": "1.0000001"}, "distance_km", "more than 6 decimal places"),
        ({"distance_km": "0.05"}, "distance_km", "at least 0.1"),
        ({"distance_km": 100.5}, "distance_km", "at most 100"),
        ({"distance_km": "1e20"}, "distance_km", "too large"),
    ],
)
def test_validate_activity_rejects_bad_numbers(activity, field, reason):
    with pytest.raises(ActivityError, match=reason) as raised:
        validate_activity(METRO, activity)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_six_decimal_places_are_accepted():
    assert validate_activity(METRO, {"distance_km": "1.123456"}) == {"distance_km": D("1.123456")}


def test_validate_activity_rejects_a_non_object():
    with pytest.raises(ActivityError) as raised:
        validate_activity(METRO, [("distance_km", 1)])  # type: ignore[arg-type]
    assert raised.value.field == "activity"


def paper(item_type: object = "e_statement", number: object = "ABCD1234", **extra) -> dict:
    return {"item_type": item_type, "document_number": number, **extra}


@pytest.mark.parametrize(
    ("activity", "field", "reason"),
    [
        (paper("e_book"), "item_type", "must be one of: e_invoice, e_statement"),
        (paper(1), "item_type", "must be one of"),
        (paper(count=1.5), "count", "whole number"),
        (paper(count="2.5"), "count", "whole number"),
        (paper(count=False), "count", "true/false"),
        (paper(count=0), "count", "at least 1"),
        (paper(count=11), "count", "at most 10"),
        (paper(number="short"), "document_number", "invalid format"),
        (paper(number=12345678), "document_number", "must be text"),
        (paper("e_invoice", "ABCD1234"), "document_number", "for item_type e_invoice"),
        (paper("e_invoice", "1" * 19), "document_number", "for item_type e_invoice"),
    ],
)
def test_validate_activity_rejects_bad_categories_integers_and_strings(activity, field, reason):
    with pytest.raises(ActivityError, match=reason) as raised:
        validate_activity(PAPERLESS, activity)
    assert raised.value.field == field


def test_integer_fields_accept_integral_numbers_in_any_form():
    for count in (2, "2", 2.0, D("2.000")):
        activity = {"item_type": "e_statement", "count": count, "document_number": "ABCD1234"}
        assert validate_activity(PAPERLESS, activity)["count"] == 2


def test_per_category_pattern_only_applies_to_that_category():
    twenty_digits = "01234567890123456789"
    assert validate_activity(PAPERLESS, {"item_type": "e_invoice", "document_number": twenty_digits})
    assert validate_activity(PAPERLESS, {"item_type": "e_statement", "document_number": "ABCD1234"})


def test_activity_to_json_writes_decimals_as_strings():
    normalised = validate_activity(RECYCLING, {"material": "paper", "weight_kg": 0.5})
    assert activity_to_json(normalised) == {"material": "paper", "weight_kg": "0.5"}


# ---------------------------------------------------------------------------------------------
# Caps and points

def test_cap_quantity_in_events_grams_or_an_activity_field():
    assert cap_quantity(METRO, {"distance_km": D(5)}, 392) == 1
    in_grams = spec("distance_km", (DISTANCE,), {}, cap_unit="grams")
    assert cap_quantity(in_grams, {"distance_km": D(5)}, 392) == 392
    assert cap_quantity(RECYCLING, {"material": "paper", "weight_kg": D("2.5")}, 7500) == D("2.5")
    assert cap_quantity(PAPERLESS, {"item_type": "e_invoice", "count": 3}, 15) == 3


def test_capped_grams_credits_the_part_within_the_cap():
    assert capped_grams(7500, D("2.5"), D(20)) == 7500        # plenty left
    assert capped_grams(7500, D("2.5"), D("2.5")) == 7500     # exactly fits
    assert capped_grams(7500, D("2.5"), D(0)) == 0            # cap used up
    assert capped_grams(7500, D("2.5"), D(-1)) == 0
    assert capped_grams(36000, D(12), D(8)) == 24000          # pro rata: 8 of 12 kg
    assert capped_grams(100, D(3), D(1)) == 33                # floored
    assert capped_grams(0, D(0), D(0)) == 0


def test_points_at_one_point_per_gram_are_the_grams():
    assert points_for(D(1), 0, 828) == 828
    assert points_for(D(1), 5000, 83) == 83


def test_fractional_rate_applies_to_the_running_daily_total():
    """BRIEF R3.3: five 5 g e-invoices at 0.1 point/gram earn 0,1,0,1,0 = floor(0.1 × 25) = 2."""
    rate = D("0.1")
    earned = [points_for(rate, before, 5) for before in (0, 5, 10, 15, 20)]
    assert earned == [0, 1, 0, 1, 0]
    assert sum(earned) == 2
    assert points_for(D("0.3"), 0, 10) == 3  # 0.3 × 10 is exactly 3, not 2.9999…
    assert points_for(D("2.5"), 1, 1) == 3   # floor(5) − floor(2.5)
