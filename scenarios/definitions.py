"""Methodology and scenario documents: parse, validate, convert to JSON and to a ScenarioSpec.

A seed file under `scenarios/methodologies/` holds one methodology version and (optionally) its
starter scenario; `flask scenarios load` reads them with `load_directory`. The database keeps the
same documents as JSON (`methodology_to_json` / `scenario_to_json`, Decimals as strings), and
`spec_from_json` turns those back into what the engine needs. YAML and JSON go through the same
parser, so a document the console saves is checked exactly like a seed file.

Every problem raises `DefinitionError` whose message names the file and the offending key.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from scenarios.engine import (
    FIELD_TYPES,
    ActivityError,
    ActivityField,
    FormulaError,
    ScenarioSpec,
    compile_formula,
    formula_references,
    validate_activity,
)

METHODOLOGY_TYPES = ("personal", "project")
METHODOLOGY_STATUSES = ("provisional", "filed")
CATEGORIES = ("衣", "食", "住", "行", "用")
DATA_SOURCES = ("metro", "bus", "bikeshare", "recycling", "einvoice")
CAP_UNITS = ("events", "grams")

_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")
_METHODOLOGY_CODE = re.compile(r"[A-Z][A-Z0-9-]{1,62}")
_RESERVED_NAMES = {"min", "max"}

_METHODOLOGY_KEYS = {
    "code", "version", "type", "title", "status", "note", "fields", "parameters", "formula",
    "data_requirements",
}
_FIELD_KEYS = {
    "name", "type", "unit", "required", "default", "allowed", "min", "max", "pattern", "patterns_by",
    "unique",
}
_PARAMETER_KEYS = {"name", "unit", "value", "values", "key_field", "source", "provisional"}
_SCENARIO_KEYS = {
    "code", "version", "name", "category", "points_per_gram", "cap", "data_sources", "self_declared",
    "review_required", "trajectory_consent", "effective_from", "description",
}


class DefinitionError(ValueError):
    """A methodology or scenario document that cannot be accepted; the message says where and why."""


@dataclass(frozen=True)
class ParameterDoc:
    name: str
    unit: str
    value: Decimal | None
    values: dict[str, Decimal] | None
    key_field: str | None
    source: str
    provisional: bool


@dataclass(frozen=True)
class ScenarioDoc:
    code: str
    version: int
    name: dict
    category: str
    points_per_gram: Decimal
    cap_unit: str
    cap_per_day: Decimal | None
    cap_per_month: Decimal | None
    data_sources: tuple[str, ...]
    self_declared: bool
    review_required: bool
    trajectory_consent: bool
    effective_from: datetime
    description: dict
    raw: dict


@dataclass(frozen=True)
class MethodologyDoc:
    code: str
    version: int
    type: str
    title: dict
    status: str
    note: dict | None
    fields: tuple[ActivityField, ...]
    parameters: list[ParameterDoc]
    formula: str
    data_requirements: dict
    raw: dict
    scenarios: tuple[ScenarioDoc, ...] = ()


# --------------------------------------------------------------------------------------------
# Small typed readers: each takes the value and a dotted location for the error message.

class _DecimalLoader(yaml.SafeLoader):
    """Reads YAML floats as exact Decimals, so `93.3` in a file is 93.3, not 93.299999…"""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        message = f"{text!r} is not a finite number"
        raise yaml.constructor.ConstructorError(None, None, message, node.start_mark)
    return number


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _fail(where: str, message: str) -> DefinitionError:
    return DefinitionError(f"{where}: {message}")


def _mapping(value: Any, where: str, keys: set[str], required: set[str]) -> dict:
    if not isinstance(value, dict):
        raise _fail(where, "must be a mapping")
    unknown = sorted(str(key) for key in value if key not in keys)
    if unknown:
        raise _fail(where, f"unknown key(s): {', '.join(unknown)}")
    missing = sorted(key for key in required if key not in value)
    if missing:
        raise _fail(where, f"missing key(s): {', '.join(missing)}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, "must be a non-empty string")
    return value


def _optional_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value) or value in _RESERVED_NAMES:
        raise _fail(where, "must be a lower-case identifier (a-z, 0-9, _), not min/max")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, "must be true or false")
    return value


def _version(value: Any, where: str) -> int:
    if type(value) is not int or value < 1:
        raise _fail(where, "must be a whole number >= 1")
    return value


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise _fail(where, "must be a number")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise _fail(where, f"must be a number, got {value!r}") from None
    if not number.is_finite():
        raise _fail(where, "must be a finite number")
    return number


def _optional_positive(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    number = _decimal(value, where)
    if number <= 0:
        raise _fail(where, "must be greater than 0 (or null for no cap)")
    return number


def _bilingual(value: Any, where: str) -> dict:
    texts = _mapping(value, where, {"zh", "en"}, {"zh", "en"})
    return {language: _text(texts[language], f"{where}.{language}") for language in ("zh", "en")}


def _regex(value: Any, where: str) -> str:
    pattern = _text(value, where)
    try:
        re.compile(pattern)
    except re.error as error:
        raise _fail(where, f"invalid regular expression: {error}") from None
    return pattern


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(where, f"must be one of: {', '.join(choices)}")
    return value


def _timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _fail(where, "must be an ISO 8601 timestamp") from None
    if not isinstance(value, datetime):
        raise _fail(where, "must be an ISO 8601 timestamp with a time zone")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(where, "must include a time zone offset, e.g. +08:00")
    return value


# --------------------------------------------------------------------------------------------
# Fields, parameters, methodology, scenario

def _patterns_by(value: Any, where: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    if value is None:
        return None
    spec = _mapping(value, where, {"field", "patterns"}, {"field", "patterns"})
    category_field = _identifier(spec["field"], f"{where}.field")
    patterns = spec["patterns"]
    if not isinstance(patterns, dict) or not patterns:
        raise _fail(f"{where}.patterns", "must be a non-empty mapping of category value to regex")
    pairs = tuple(
        (_text(key, f"{where}.patterns"), _regex(pattern, f"{where}.patterns.{key}"))
        for key, pattern in sorted(patterns.items())
    )
    return category_field, pairs


def _parse_field(value: Any, where: str) -> ActivityField:
    raw = _mapping(value, where, _FIELD_KEYS, {"name", "type"})
    name = _identifier(raw["name"], f"{where}.name")
    kind = _choice(raw["type"], f"{where}.type", FIELD_TYPES)
    default = raw.get("default")
    required = _bool(raw.get("required", default is None), f"{where}.required")
    if required and default is not None:
        raise _fail(where, "a field with a default cannot be required")
    allowed = raw.get("allowed")
    if kind == "category":
        if not isinstance(allowed, list) or not allowed:
            raise _fail(f"{where}.allowed", "a category field needs a non-empty list of allowed values")
        allowed = tuple(_identifier(item, f"{where}.allowed") for item in allowed)
        if len(set(allowed)) != len(allowed):
            raise _fail(f"{where}.allowed", "values must be distinct")
    elif allowed is not None:
        raise _fail(f"{where}.allowed", "only category fields have allowed values")
    numeric = kind in ("decimal", "integer")
    for key in ("min", "max"):
        if raw.get(key) is not None and not numeric:
            raise _fail(f"{where}.{key}", "only decimal and integer fields have min/max")
    for key in ("pattern", "patterns_by"):
        if raw.get(key) is not None and kind != "string":
            raise _fail(f"{where}.{key}", "only string fields have patterns")
    minimum = None if raw.get("min") is None else _decimal(raw["min"], f"{where}.min")
    maximum = None if raw.get("max") is None else _decimal(raw["max"], f"{where}.max")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise _fail(where, "min is greater than max")
    field = ActivityField(
        name=name,
        type=kind,
        unit=_optional_text(raw.get("unit"), f"{where}.unit"),
        required=required,
        default=None,
        allowed=allowed,
        min=minimum,
        max=maximum,
        pattern=None if raw.get("pattern") is None else _regex(raw["pattern"], f"{where}.pattern"),
        unique=_bool(raw.get("unique", False), f"{where}.unique"),
        patterns_by=_patterns_by(raw.get("patterns_by"), f"{where}.patterns_by"),
    )
    if default is None:
        return field
    # The default must itself be valid data for the field; store it normalised.
    probe = ScenarioSpec("probe", 1, "PROBE", 1, (field,), "0", {})
    try:
        normalised = validate_activity(probe, {name: default})[name]
    except ActivityError as error:
        raise _fail(f"{where}.default", error.reason) from None
    return dataclasses.replace(field, default=normalised)


def _parse_parameter(value: Any, where: str, fields: dict[str, ActivityField]) -> ParameterDoc:
    raw = _mapping(value, where, _PARAMETER_KEYS, {"name", "unit", "source"})
    name = _identifier(raw["name"], f"{where}.name")
    has_value, has_values = raw.get("value") is not None, raw.get("values") is not None
    if has_value == has_values:
        raise _fail(where, "give either value (a number) or values with key_field (a lookup table)")
    values = None
    key_field = None
    if has_values:
        key_field = _identifier(raw.get("key_field"), f"{where}.key_field")
        field = fields.get(key_field)
        if field is None or field.type != "category":
            raise _fail(f"{where}.key_field", f"{key_field!r} is not a declared category field")
        table = raw["values"]
        if not isinstance(table, dict):
            raise _fail(f"{where}.values", "must be a mapping of category value to number")
        values = {str(key): _decimal(number, f"{where}.values.{key}") for key, number in table.items()}
        missing = [category for category in field.allowed or () if category not in values]
        extra = sorted(key for key in values if key not in (field.allowed or ()))
        if missing:
            raise _fail(f"{where}.values", f"no value for {', '.join(missing)}")
        if extra:
            raise _fail(f"{where}.values", f"{', '.join(extra)} not allowed by {key_field}")
    elif raw.get("key_field") is not None:
        raise _fail(f"{where}.key_field", "only lookup tables (values) have a key_field")
    return ParameterDoc(
        name=name,
        unit=_text(raw["unit"], f"{where}.unit"),
        value=_decimal(raw["value"], f"{where}.value") if has_value else None,
        values=values,
        key_field=key_field,
        source=_text(raw["source"], f"{where}.source"),
        provisional=_bool(raw.get("provisional", False), f"{where}.provisional"),
    )


def _check_formula(
    formula: str, where: str, fields: dict[str, ActivityField], parameters: list[ParameterDoc]
) -> None:
    scalars = {parameter.name for parameter in parameters if parameter.values is None}
    tables = {parameter.name: parameter.key_field for parameter in parameters if parameter.values is not None}
    try:
        compile_formula(formula, set(fields), scalars, set(tables))
        names, lookups = formula_references(formula)
    except FormulaError as error:
        raise _fail(where, str(error)) from None
    for table, key in sorted(lookups):
        if tables[table] != key:
            raise _fail(where, f"{table} is keyed by {tables[table]}, not {key}")
    for name in sorted(names | {key for _, key in lookups}):
        field = fields.get(name)
        if field is not None and not field.required and field.default is None:
            raise _fail(where, f"optional field {name!r} is used by the formula, so it needs a default")
        if field is not None and field.type not in ("decimal", "integer") and name in names:
            raise _fail(where, f"field {name!r} is not a number and cannot be used in arithmetic")


def _check_patterns_by(fields: dict[str, ActivityField], where: str) -> None:
    for index, field in enumerate(fields.values()):
        if field.patterns_by is None:
            continue
        category_field, pairs = field.patterns_by
        target = fields.get(category_field)
        location = f"{where}[{index}].patterns_by"
        if target is None or target.type != "category":
            raise _fail(location, f"{category_field!r} is not a declared category field")
        for category, _ in pairs:
            if category not in (target.allowed or ()):
                raise _fail(location, f"{category!r} is not an allowed value of {category_field}")


def parse_methodology(raw: Any, where: str = "methodology") -> MethodologyDoc:
    """Validate one methodology mapping (from YAML or from the database's JSON)."""
    raw = _mapping(raw, where, _METHODOLOGY_KEYS, _METHODOLOGY_KEYS - {"note"})
    code = raw["code"]
    if not isinstance(code, str) or not _METHODOLOGY_CODE.fullmatch(code):
        raise _fail(f"{where}.code", "must be upper-case letters, digits and '-', e.g. SHCI-P-METRO")
    status = _choice(raw["status"], f"{where}.status", METHODOLOGY_STATUSES)
    note = None if raw.get("note") is None else _bilingual(raw["note"], f"{where}.note")
    if status == "provisional" and note is None:
        raise _fail(f"{where}.note", "a provisional methodology must say why in a note")
    if not isinstance(raw["fields"], list) or not raw["fields"]:
        raise _fail(f"{where}.fields", "must be a non-empty list")
    fields: dict[str, ActivityField] = {}
    for index, item in enumerate(raw["fields"]):
        field = _parse_field(item, f"{where}.fields[{index}]")
        if field.name in fields:
            raise _fail(f"{where}.fields[{index}].name", f"duplicate field {field.name!r}")
        fields[field.name] = field
    _check_patterns_by(fields, f"{where}.fields")
    if not isinstance(raw["parameters"], list):
        raise _fail(f"{where}.parameters", "must be a list")
    parameters: list[ParameterDoc] = []
    for index, item in enumerate(raw["parameters"]):
        parameter = _parse_parameter(item, f"{where}.parameters[{index}]", fields)
        if parameter.name in fields or any(p.name == parameter.name for p in parameters):
            raise _fail(f"{where}.parameters[{index}].name", f"name {parameter.name!r} is already used")
        parameters.append(parameter)
    formula = _text(raw["formula"], f"{where}.formula")
    _check_formula(formula, f"{where}.formula", fields, parameters)
    return MethodologyDoc(
        code=code,
        version=_version(raw["version"], f"{where}.version"),
        type=_choice(raw["type"], f"{where}.type", METHODOLOGY_TYPES),
        title=_bilingual(raw["title"], f"{where}.title"),
        status=status,
        note=note,
        fields=tuple(fields.values()),
        parameters=parameters,
        formula=formula,
        data_requirements=_bilingual(raw["data_requirements"], f"{where}.data_requirements"),
        raw=raw,
    )


def parse_scenario(raw: Any, methodology: MethodologyDoc, where: str = "scenario") -> ScenarioDoc:
    """Validate one scenario mapping against the methodology version it uses."""
    raw = _mapping(raw, where, _SCENARIO_KEYS, _SCENARIO_KEYS)
    cap = _mapping(raw["cap"], f"{where}.cap", {"unit", "per_day", "per_month"}, {"unit"})
    numeric_fields = tuple(field.name for field in methodology.fields if field.type in ("decimal", "integer"))
    cap_unit = _choice(cap["unit"], f"{where}.cap.unit", CAP_UNITS + numeric_fields)
    points_per_gram = _decimal(raw["points_per_gram"], f"{where}.points_per_gram")
    if points_per_gram <= 0:
        raise _fail(f"{where}.points_per_gram", "must be greater than 0")
    sources = raw["data_sources"]
    if not isinstance(sources, list) or len(set(sources)) != len(sources):
        raise _fail(f"{where}.data_sources", "must be a list of distinct partner kinds")
    sources = tuple(_choice(source, f"{where}.data_sources", DATA_SOURCES) for source in sources)
    self_declared = _bool(raw["self_declared"], f"{where}.self_declared")
    if not sources and not self_declared:
        message = "nobody could report this scenario: add a source or allow self-declaring"
        raise _fail(f"{where}.data_sources", message)
    code = _identifier(raw["code"], f"{where}.code")
    return ScenarioDoc(
        code=code,
        version=_version(raw["version"], f"{where}.version"),
        name=_bilingual(raw["name"], f"{where}.name"),
        category=_choice(raw["category"], f"{where}.category", CATEGORIES),
        points_per_gram=points_per_gram,
        cap_unit=cap_unit,
        cap_per_day=_optional_positive(cap.get("per_day"), f"{where}.cap.per_day"),
        cap_per_month=_optional_positive(cap.get("per_month"), f"{where}.cap.per_month"),
        data_sources=sources,
        self_declared=self_declared,
        review_required=_bool(raw["review_required"], f"{where}.review_required"),
        trajectory_consent=_bool(raw["trajectory_consent"], f"{where}.trajectory_consent"),
        effective_from=_timestamp(raw["effective_from"], f"{where}.effective_from"),
        description=_bilingual(raw["description"], f"{where}.description"),
        raw=raw,
    )


def parse_document(raw: Any, where: str = "document") -> MethodologyDoc:
    """A seed document: `methodology:` and optionally its starter `scenario:`."""
    raw = _mapping(raw, where, {"methodology", "scenario"}, {"methodology"})
    methodology = parse_methodology(raw["methodology"], f"{where}: methodology")
    if raw.get("scenario") is None:
        return methodology
    scenario = parse_scenario(raw["scenario"], methodology, f"{where}: scenario")
    return dataclasses.replace(methodology, scenarios=(scenario,))


def load_file(path: str | Path) -> MethodologyDoc:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise DefinitionError(f"{path.name}: not valid YAML: {error}") from None
    return parse_document(raw, path.name)


def load_directory(path: str | Path) -> list[MethodologyDoc]:
    """Every `*.yaml` seed file in a directory, in file-name order; codes must not repeat."""
    documents = [load_file(file) for file in sorted(Path(path).glob("*.yaml"))]
    methodologies: set[tuple[str, int]] = set()
    scenarios: set[tuple[str, int]] = set()
    for document in documents:
        key = (document.code, document.version)
        if key in methodologies:
            raise DefinitionError(f"methodology {document.code} version {document.version} is defined twice")
        methodologies.add(key)
        for scenario in document.scenarios:
            if (scenario.code, scenario.version) in scenarios:
                raise DefinitionError(f"scenario {scenario.code} version {scenario.version} is defined twice")
            scenarios.add((scenario.code, scenario.version))
    return documents


# --------------------------------------------------------------------------------------------
# JSON for the database, and the engine's ScenarioSpec

def _json_number(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _field_to_json(field: ActivityField) -> dict:
    data: dict[str, Any] = {"name": field.name, "type": field.type}
    if field.unit is not None:
        data["unit"] = field.unit
    data["required"] = field.required
    if field.default is not None:
        default = field.default
        data["default"] = format(default, "f") if isinstance(default, Decimal) else default
    if field.allowed is not None:
        data["allowed"] = list(field.allowed)
    if field.min is not None:
        data["min"] = _json_number(field.min)
    if field.max is not None:
        data["max"] = _json_number(field.max)
    if field.pattern is not None:
        data["pattern"] = field.pattern
    if field.patterns_by is not None:
        category_field, pairs = field.patterns_by
        data["patterns_by"] = {"field": category_field, "patterns": dict(pairs)}
    data["unique"] = field.unique
    return data


def _parameter_to_json(parameter: ParameterDoc) -> dict:
    data: dict[str, Any] = {"name": parameter.name, "unit": parameter.unit}
    if parameter.values is None:
        data["value"] = _json_number(parameter.value)
    else:
        data["key_field"] = parameter.key_field
        data["values"] = {key: _json_number(number) for key, number in parameter.values.items()}
    data["source"] = parameter.source
    data["provisional"] = parameter.provisional
    return data


def methodology_to_json(doc: MethodologyDoc) -> dict:
    """The methodology as plain JSON (Decimals as strings); `parse_methodology` reads it back."""
    data: dict[str, Any] = {
        "code": doc.code,
        "version": doc.version,
        "type": doc.type,
        "title": dict(doc.title),
        "status": doc.status,
    }
    if doc.note is not None:
        data["note"] = dict(doc.note)
    data["fields"] = [_field_to_json(field) for field in doc.fields]
    data["parameters"] = [_parameter_to_json(parameter) for parameter in doc.parameters]
    data["formula"] = doc.formula
    data["data_requirements"] = dict(doc.data_requirements)
    return data


def scenario_to_json(doc: ScenarioDoc) -> dict:
    """The scenario as plain JSON (Decimals as strings, timestamp ISO 8601)."""
    return {
        "code": doc.code,
        "version": doc.version,
        "name": dict(doc.name),
        "category": doc.category,
        "points_per_gram": _json_number(doc.points_per_gram),
        "cap": {
            "unit": doc.cap_unit,
            "per_day": _json_number(doc.cap_per_day),
            "per_month": _json_number(doc.cap_per_month),
        },
        "data_sources": list(doc.data_sources),
        "self_declared": doc.self_declared,
        "review_required": doc.review_required,
        "trajectory_consent": doc.trajectory_consent,
        "effective_from": doc.effective_from.isoformat(),
        "description": dict(doc.description),
    }


def spec_from(methodology: MethodologyDoc, scenario: ScenarioDoc) -> ScenarioSpec:
    """What the engine needs to calculate this scenario under this methodology version."""
    parameters: dict[str, Any] = {
        parameter.name: parameter.value if parameter.values is None else dict(parameter.values)
        for parameter in methodology.parameters
    }
    return ScenarioSpec(
        code=scenario.code,
        version=scenario.version,
        methodology_code=methodology.code,
        methodology_version=methodology.version,
        fields=methodology.fields,
        formula=methodology.formula,
        parameters=parameters,
        points_per_gram=scenario.points_per_gram,
        cap_unit=scenario.cap_unit,
        cap_per_day=scenario.cap_per_day,
        cap_per_month=scenario.cap_per_month,
    )


def spec_from_json(methodology_json: dict, scenario_json: dict) -> ScenarioSpec:
    """A ScenarioSpec from the JSON the database stores; re-validated, so bad rows fail loudly.

    Parsing costs well under a millisecond; callers crediting many events should build the spec
    once per scenario version, not once per event.
    """
    methodology = parse_methodology(methodology_json)
    return spec_from(methodology, parse_scenario(scenario_json, methodology))
