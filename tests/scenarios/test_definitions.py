"""Methodology/scenario documents: the seed files, the checks on a document, JSON round trips."""
from __future__ import annotations

import copy
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from scenarios.definitions import (
    DefinitionError,
    load_directory,
    load_file,
    methodology_to_json,
    parse_document,
    scenario_to_json,
    spec_from,
    spec_from_json,
)
from scenarios.engine import calculate, cap_quantity, validate_activity

D = Decimal
SEED_DIRECTORY = Path(__file__).resolve().parents[2] / "scenarios" / "methodologies"

VALID = {
    "methodology": {
        "code": "SHCI-P-RECYCLE",
        "version": 1,
        "type": "personal",
        "title": {"zh": "可回收物交投", "en": "Recycling drop-off"},
        "status": "provisional",
        "note": {"zh": "暂定", "en": "Provisional"},
        "fields": [
            {"name": "material", "type": "category", "allowed": ["paper", "glass"]},
            {"name": "weight_kg", "type": "decimal", "unit": "kg", "min": "0.01", "max": 50},
        ],
        "parameters": [
            {
                "name": "factor", "unit": "gCO2e/kg", "key_field": "material",
                "values": {"paper": 3000, "glass": "250"}, "source": "test", "provisional": True,
            },
        ],
        "formula": "weight_kg * factor[material]",
        "data_requirements": {"zh": "称重", "en": "Weighed kg"},
    },
    "scenario": {
        "code": "recycling_dropoff",
        "version": 1,
        "name": {"zh": "可回收物交投", "en": "Recycling drop-off"},
        "category": "用",
        "points_per_gram": 1,
        "cap": {"unit": "weight_kg", "per_day": 20, "per_month": None},
        "data_sources": ["recycling"],
        "self_declared": False,
        "review_required": False,
        "trajectory_consent": False,
        "effective_from": "2026-01-01T00:00:00+08:00",
        "description": {"zh": "说明", "en": "Description"},
    },
}


def document(**changes) -> dict:
    """A valid document with `section__key=value` changes applied (value None deletes the key)."""
    data = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        if value is None:
            del data[section][key]
        else:
            data[section][key] = value
    return data


def refused(data: dict, complaint: str) -> None:
    with pytest.raises(DefinitionError, match=complaint):
        parse_document(data, "test.yaml")


# ---------------------------------------------------------------------------------------------
# The five seed files

def seeds() -> dict[str, tuple]:
    return {doc.scenarios[0].code: (doc, doc.scenarios[0]) for doc in load_directory(SEED_DIRECTORY)}


def test_the_five_starter_scenarios_load():
    assert sorted(seeds()) == ["bikeshare_ride", "bus_trip", "metro_trip", "paperless", "recycling_dropoff"]


def test_every_seed_parameter_cites_a_source_and_is_marked_provisional():
    for methodology, _ in seeds().values():
        assert methodology.status == "provisional"
        assert methodology.note["zh"] and methodology.note["en"]
        for parameter in methodology.parameters:
            assert parameter.source.strip()
            assert parameter.provisional is True


@pytest.mark.parametrize(
    ("scenario", "activity", "grams", "cap_unit", "quantity"),
    [
        ("metro_trip", {"distance_km": "10.57"}, 828, "events", 1),
        ("bikeshare_ride", {"distance_km": "0.9", "duration_min": 4}, 83, "events", 1),
        ("bus_trip", {}, 212, "trips", 1),
        ("bus_trip", {"trips": 2, "distance_km": "7.5"}, 425, "trips", 2),
        ("recycling_dropoff", {"material": "paper", "weight_kg": "2.5"}, 7500, "weight_kg", D("2.5")),
        ("recycling_dropoff", {"material": "glass", "weight_kg": 1}, 250, "weight_kg", 1),
        ("paperless", {"item_type": "e_invoice", "document_number": "24312000000012345678"}, 5, "count", 1),
        ("paperless", {"item_type": "e_statement", "document_number": "ST202601"},
         24, "count", 1),
    ],
)
def test_seed_scenarios_calculate_from_their_methodology(scenario, activity, grams, cap_unit, quantity):
    methodology, scenario_doc = seeds()[scenario]
    spec = spec_from(methodology, scenario_doc)
    result = calculate(spec, activity)
    assert result.grams == grams
    assert spec.cap_unit == cap_unit
    assert cap_quantity(spec, validate_activity(spec, activity), result.grams) == quantity


def test_seed_caps_and_flags():
    found = {code: scenario for code, (_, scenario) in seeds().items()}
    assert {code: s.cap_per_day for code, s in found.items()} == {
        "metro_trip": 10, "bus_trip": 10, "bikeshare_ride": 5, "recycling_dropoff": 20, "paperless": 10,
    }
    transport = {"metro_trip", "bus_trip", "bikeshare_ride"}
    assert {code for code, s in found.items() if s.trajectory_consent} == transport
    assert {code for code, s in found.items() if s.self_declared} == {"paperless"}
    assert found["paperless"].data_sources == ("einvoice",)
    assert all(s.effective_from.utcoffset() == timedelta(hours=8) for s in found.values())


def test_paperless_document_number_is_unique_and_e_invoices_need_twenty_digits():
    methodology, _ = seeds()["paperless"]
    number = next(field for field in methodology.fields if field.name == "document_number")
    assert number.unique is True
    assert number.patterns_by == ("item_type", (("e_invoice", "^[0-9]{20}$"),))


def test_yaml_numbers_are_read_as_exact_decimals():
    methodology, _ = seeds()["bikeshare_ride"]
    assert methodology.parameters[0].value == D("93.3")
    assert isinstance(methodology.parameters[0].value, Decimal)


def test_seed_documents_round_trip_through_json():
    for methodology, scenario in seeds().values():
        methodology_json = json.loads(json.dumps(methodology_to_json(methodology)))
        scenario_json = json.loads(json.dumps(scenario_to_json(scenario)))
        assert spec_from_json(methodology_json, scenario_json) == spec_from(methodology, scenario)


def test_json_keeps_decimals_as_strings():
    methodology, scenario = seeds()["metro_trip"]
    assert methodology_to_json(methodology)["parameters"][0]["value"] == "78.4"
    assert scenario_to_json(scenario)["cap"] == {"unit": "events", "per_day": "10", "per_month": None}
    assert scenario_to_json(scenario)["effective_from"] == "2026-01-01T00:00:00+08:00"


# ---------------------------------------------------------------------------------------------
# What a document must satisfy

def test_the_valid_example_parses():
    doc = parse_document(document())
    assert doc.code == "SHCI-P-RECYCLE"
    assert doc.parameters[0].values == {"paper": D(3000), "glass": D(250)}
    assert doc.scenarios[0].cap_unit == "weight_kg"


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"methodology__formula": "weight_kg * secret"}, "unknown name 'secret'"),
        ({"methodology__formula": "__import__('os').system('id')"}, "not allowed"),
        ({"methodology__formula": "weight_kg ** 99"}, "too large"),
        ({"methodology__formula": "weight_kg * factor[weight_kg]"}, "keyed by material, not weight_kg"),
        ({"methodology__formula": "material * 2"}, "not a number"),
        ({"methodology__status": "approved"}, "status: must be one of"),
        ({"methodology__note": None}, "must say why in a note"),
        ({"methodology__type": "corporate"}, "type: must be one of"),
        ({"methodology__code": "bad code"}, "code: must be upper-case"),
        ({"methodology__version": 0}, "version: must be a whole number"),
        ({"methodology__title": {"zh": "只有中文"}}, "missing key"),
        ({"methodology__colour": "green"}, "unknown key"),
        ({"scenario__category": "玩"}, "category: must be one of: 衣, 食, 住, 行, 用"),
        ({"scenario__data_sources": ["taxi"]}, "data_sources: must be one of"),
        ({"scenario__data_sources": []}, "nobody could report"),
        ({"scenario__effective_from": "2026-01-01T00:00:00"}, "time zone"),
        ({"scenario__effective_from": "next monday"}, "ISO 8601"),
        ({"scenario__cap": {"unit": "material", "per_day": 1}}, "cap.unit: must be one of"),
        ({"scenario__cap": {"unit": "kilograms"}}, "cap.unit: must be one of"),
        ({"scenario__cap": {"unit": "events", "per_day": 0}}, "per_day: must be greater than 0"),
        ({"scenario__points_per_gram": 0}, "points_per_gram: must be greater than 0"),
        ({"scenario__points_per_gram": "lots"}, "must be a number"),
        ({"scenario__self_declared": "yes"}, "true or false"),
    ],
)
def test_invalid_documents_are_refused_with_a_clear_message(changes, complaint):
    refused(document(**changes), complaint)


def test_error_messages_name_the_file_and_key():
    with pytest.raises(DefinitionError, match=r"^test.yaml: scenario.category: "):
        parse_document(document(scenario__category="玩"), "test.yaml")


def with_fields(*fields, parameters=None, formula="weight_kg * factor[material]") -> dict:
    data = document(methodology__fields=list(fields), methodology__formula=formula)
    if parameters is not None:
        data["methodology"]["parameters"] = parameters
    return data


MATERIAL = {"name": "material", "type": "category", "allowed": ["paper", "glass"]}
WEIGHT = {"name": "weight_kg", "type": "decimal", "unit": "kg"}


def test_lookup_table_must_cover_every_category_value():
    parameters = copy.deepcopy(VALID["methodology"]["parameters"])
    parameters[0]["values"] = {"paper": 3000}
    refused(with_fields(MATERIAL, WEIGHT, parameters=parameters), "no value for glass")
    parameters[0]["values"] = {"paper": 3000, "glass": 250, "metal": 4000}
    refused(with_fields(MATERIAL, WEIGHT, parameters=parameters), "metal not allowed by material")


def test_lookup_table_key_must_be_a_category_field():
    parameters = copy.deepcopy(VALID["methodology"]["parameters"])
    parameters[0]["key_field"] = "weight_kg"
    refused(with_fields(MATERIAL, WEIGHT, parameters=parameters), "not a declared category field")


def test_parameter_needs_exactly_one_of_value_or_values():
    table = {"values": {"paper": 1, "glass": 1}, "key_field": "material"}
    both = [{"name": "k", "unit": "g", "value": 1, **table, "source": "s"}]
    refused(with_fields(MATERIAL, WEIGHT, parameters=both, formula="weight_kg * k"), "either value")
    neither = [{"name": "k", "unit": "g", "source": "s"}]
    refused(with_fields(MATERIAL, WEIGHT, parameters=neither, formula="weight_kg * k"), "either value")


def test_parameter_needs_a_source():
    parameters = [{"name": "k", "unit": "g", "value": 1}]
    data = with_fields(MATERIAL, WEIGHT, parameters=parameters, formula="weight_kg * k")
    refused(data, "missing key.*source")


def test_optional_field_used_by_the_formula_needs_a_default():
    optional = {**WEIGHT, "required": False}
    refused(with_fields(MATERIAL, optional), "needs a default")
    defaulted = {**WEIGHT, "default": 1}
    assert parse_document(with_fields(MATERIAL, defaulted)).fields[1].default == D(1)


def test_field_default_must_be_valid_for_the_field():
    refused(with_fields(MATERIAL, {**WEIGHT, "default": 0, "min": 1}), "default: must be at least 1")
    refused(with_fields(MATERIAL, {**WEIGHT, "default": 1, "required": True}), "cannot be required")


@pytest.mark.parametrize(
    ("field", "complaint"),
    [
        ({"name": "colour", "type": "category"}, "needs a non-empty list of allowed values"),
        ({"name": "colour", "type": "colour"}, "type: must be one of"),
        ({"name": "Colour", "type": "string"}, "lower-case identifier"),
        ({"name": "max", "type": "decimal"}, "lower-case identifier"),
        ({"name": "note", "type": "string", "min": 1}, "only decimal and integer fields"),
        ({"name": "n", "type": "decimal", "pattern": "x"}, "only string fields have patterns"),
        ({"name": "n", "type": "decimal", "min": 5, "max": 1}, "min is greater than max"),
        ({"name": "n", "type": "string", "pattern": "(unclosed"}, "invalid regular expression"),
        ({"name": "n", "type": "string", "patterns_by": {"field": "weight_kg", "patterns": {"x": "y"}}},
         "not a declared category field"),
        ({"name": "n", "type": "string", "patterns_by": {"field": "material", "patterns": {"metal": "y"}}},
         "not an allowed value of material"),
        ({"name": "weight_kg", "type": "decimal"}, "duplicate field"),
        ({"name": "factor", "type": "decimal", "required": False}, "already used"),
    ],
)
def test_invalid_fields_are_refused(field, complaint):
    refused(with_fields(MATERIAL, WEIGHT, field), complaint)


def test_load_directory_refuses_a_methodology_defined_twice(tmp_path):
    text = (SEED_DIRECTORY / "metro_trip.yaml").read_text(encoding="utf-8")
    (tmp_path / "a.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError, match="SHCI-P-METRO version 1 is defined twice"):
        load_directory(tmp_path)


def test_load_file_refuses_invalid_yaml_and_non_finite_numbers(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("methodology: [unclosed\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match="broken.yaml: not valid YAML"):
        load_file(broken)
    infinite = tmp_path / "infinite.yaml"
    infinite.write_text("methodology: {value: .inf}\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match="not a finite number"):
        load_file(infinite)


def test_spec_from_json_revalidates_what_the_database_holds():
    doc = parse_document(document())
    methodology_json = methodology_to_json(doc)
    methodology_json["formula"] = "weight_kg * __builtins__"
    with pytest.raises(DefinitionError, match="not allowed"):
        spec_from_json(methodology_json, scenario_to_json(doc.scenarios[0]))


def test_one_document_number_counts_as_one_document():
    """A unique document number must not be declared as several documents (count is fixed at 1)."""
    from scenarios.engine import ActivityError

    methodology, scenario = seeds()["paperless"]
    spec = spec_from(methodology, scenario)
    with pytest.raises(ActivityError):
        validate_activity(spec, {"item_type": "e_statement", "count": 2, "document_number": "ST202601"})
