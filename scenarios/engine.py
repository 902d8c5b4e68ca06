"""The calculation engine: activity validation, a safe Decimal formula evaluator, points and caps.

Operators publish new scenarios without a code deploy, so a scenario's formula is data typed into
the console. It is therefore parsed with `ast` and compiled from an allow-list into a tree of small
closures over `Decimal` arithmetic; Python's `eval`/`exec` are never used, and nothing but the
declared activity fields and parameters can be named. Everything here is a pure function: no Flask,
no database, no clock.

Rounding rule (BRIEF R3.3): compute exactly in Decimal, then round *down* to whole grams, because
float arithmetic turns 3 into 2.9999999999999996 and a citizen notices the missing gram.
"""
from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import (
    ROUND_FLOOR,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any

FIELD_TYPES = ("decimal", "integer", "category", "string")
MAX_FORMULA_LENGTH = 500
MAX_EXPONENT = 4
MAX_DECIMAL_PLACES = 6
MAX_MAGNITUDE = Decimal(10) ** 15  # no activity quantity is anywhere near this; stops absurd input early
MAX_NUMBER_TEXT = 40
MAX_STRING_LENGTH = 256

# One context for all engine arithmetic: far more precision than any gram count needs, and every
# abnormal condition raises instead of silently producing NaN or Infinity.
DECIMAL_CONTEXT = Context(prec=50, rounding=ROUND_FLOOR, traps=[InvalidOperation, DivisionByZero, Overflow])

_INTEGER_TEXT = re.compile(r"[+-]?\d{1,16}")


class FormulaError(ValueError):
    """The formula is invalid or unsafe; the message says which construct and why."""


class ActivityError(ValueError):
    """Activity data that the scenario's field declarations (or its formula) cannot accept."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class ActivityField:
    """One declared activity field of a methodology.

    `patterns_by` is an optional per-category format on a "string" field, as
    `(category_field_name, ((category_value, regex), ...))`: e.g. a document number must be a
    20-digit 全电发票 number only when `item_type` is `e_invoice`. It applies in addition to
    `pattern`. Tuples (not a dict) keep the dataclass hashable.
    """

    name: str
    type: str
    unit: str | None = None
    required: bool = True
    default: object = None
    allowed: tuple[str, ...] | None = None
    min: Decimal | None = None
    max: Decimal | None = None
    pattern: str | None = None
    unique: bool = False
    patterns_by: tuple[str, tuple[tuple[str, str], ...]] | None = None


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything `calculate` needs, built from the database's JSON or from the seed YAML."""

    code: str
    version: int
    methodology_code: str
    methodology_version: int
    fields: tuple[ActivityField, ...]
    formula: str
    parameters: dict
    points_per_gram: Decimal = Decimal(1)
    cap_unit: str = "events"
    cap_per_day: Decimal | None = None
    cap_per_month: Decimal | None = None


@dataclass(frozen=True)
class Calculation:
    grams: int
    exact: Decimal
    trace: dict


# --------------------------------------------------------------------------------------------
# Formula compilation

Evaluator = Callable[[dict], Any]

_BINARY_OPERATIONS: dict[type, Callable[[Any, Any], Decimal]] = {
    ast.Add: DECIMAL_CONTEXT.add,
    ast.Sub: DECIMAL_CONTEXT.subtract,
    ast.Mult: DECIMAL_CONTEXT.multiply,
    ast.Div: DECIMAL_CONTEXT.divide,
}

_CONSTRUCT_NAMES: dict[type, str] = {
    ast.Attribute: "attribute access",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.Compare: "comparison",
    ast.BoolOp: "boolean operator",
    ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment expression",
    ast.JoinedStr: "string literal",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Dict: "dict",
    ast.Set: "set",
    ast.Starred: "starred argument",
    ast.Slice: "slice",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


@dataclass(frozen=True)
class _Compiled:
    """A formula compiled once: its evaluator and what it refers to."""

    evaluate: Evaluator
    names: frozenset[str]                     # bare names: activity fields and scalar parameters
    lookups: frozenset[tuple[str, str]]       # (table, key field) pairs, e.g. ("factor", "material")


def _construct_name(node: ast.AST) -> str:
    return _CONSTRUCT_NAMES.get(type(node), type(node).__name__)


def _constant(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "string literal" if isinstance(value, (str, bytes)) else f"constant {value!r}"
        raise FormulaError(f"{kind} is not allowed; only numbers")
    number = Decimal(str(value))
    if not number.is_finite():
        raise FormulaError(f"constant {value!r} is not a finite number")
    return number


def _small_exponent(node: ast.expr) -> int:
    """The exponent of `**` must be a literal integer with |n| <= MAX_EXPONENT."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if not (isinstance(node, ast.Constant) and type(node.value) is int):
        raise FormulaError("exponent of ** must be a literal whole number")
    exponent = sign * node.value
    if abs(exponent) > MAX_EXPONENT:
        raise FormulaError(f"exponent {exponent} is too large (at most {MAX_EXPONENT} in magnitude)")
    return exponent


class _Compiler:
    """Walks the allow-list and builds closures; collects the names the formula uses."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.lookups: set[tuple[str, str]] = set()

    def build(self, node: ast.AST) -> Evaluator:
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.Constant):
            number = _constant(node.value)
            return lambda env: number
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Subscript):
            return self._lookup(node)
        if isinstance(node, ast.Call):
            return self._min_max(node)
        raise FormulaError(f"{_construct_name(node)} is not allowed")

    def _binary(self, node: ast.BinOp) -> Evaluator:
        left = self.build(node.left)
        if isinstance(node.op, ast.Pow):
            exponent = _small_exponent(node.right)
            power = DECIMAL_CONTEXT.power
            return lambda env: power(left(env), exponent)
        operation = _BINARY_OPERATIONS.get(type(node.op))
        if operation is None:
            raise FormulaError(f"operator {type(node.op).__name__} is not allowed; use + - * / **")
        right = self.build(node.right)
        return lambda env: operation(left(env), right(env))

    def _unary(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.USub):
            minus = DECIMAL_CONTEXT.minus
            return lambda env: minus(operand(env))
        if isinstance(node.op, ast.UAdd):
            return operand
        raise FormulaError(f"unary operator {type(node.op).__name__} is not allowed")

    def _name(self, node: ast.Name) -> Evaluator:
        name = node.id
        if name.startswith("_"):
            raise FormulaError(f"name {name!r} is not allowed")
        self.names.add(name)
        return lambda env: env[name]

    def _lookup(self, node: ast.Subscript) -> Evaluator:
        if not isinstance(node.value, ast.Name):
            raise FormulaError(f"{_construct_name(node.value)} cannot be indexed; use table[category_field]")
        if not isinstance(node.slice, ast.Name):
            raise FormulaError("a lookup table must be indexed by a category field, e.g. factor[material]")
        table, key = node.value.id, node.slice.id
        if table.startswith("_") or key.startswith("_"):
            raise FormulaError("names starting with '_' are not allowed")
        self.lookups.add((table, key))
        return lambda env: env[table][env[key]]

    def _min_max(self, node: ast.Call) -> Evaluator:
        if not (isinstance(node.func, ast.Name) and node.func.id in ("min", "max")):
            called = node.func.id if isinstance(node.func, ast.Name) else _construct_name(node.func)
            raise FormulaError(f"call to {called!r} is not allowed; only min() and max()")
        if node.keywords:
            raise FormulaError("keyword arguments are not allowed")
        if not node.args:
            raise FormulaError(f"{node.func.id}() needs at least one argument")
        arguments = tuple(self.build(argument) for argument in node.args)
        choose = min if node.func.id == "min" else max
        return lambda env: choose([argument(env) for argument in arguments])


@functools.lru_cache(maxsize=1024)
def _compile(formula: str) -> _Compiled:
    """Parse and compile a formula once; the name checks against a scenario happen elsewhere."""
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError("formula is empty")
    if len(formula) > MAX_FORMULA_LENGTH:
        raise FormulaError(f"formula is longer than {MAX_FORMULA_LENGTH} characters")
    try:
        tree = ast.parse(formula.strip(), mode="eval")
    except SyntaxError as error:
        raise FormulaError(f"formula is not valid syntax: {error.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise FormulaError("formula is nested too deeply") from None
    compiler = _Compiler()
    try:
        evaluate = compiler.build(tree.body)
    except RecursionError:
        raise FormulaError("formula is nested too deeply") from None
    return _Compiled(evaluate, frozenset(compiler.names), frozenset(compiler.lookups))


def compile_formula(
    formula: str,
    field_names: set[str],
    parameter_names: set[str],
    table_names: set[str] = frozenset(),
) -> None:
    """Check a formula at definition time against the declared names; raise FormulaError.

    `parameter_names` are the scalar parameters, `table_names` the lookup-table parameters. Bare
    names must be fields or scalar parameters; `table[key]` needs a declared table and a declared
    field as key (that the key is the table's category field is checked by `definitions`).
    """
    compiled = _compile(formula)
    clash = set(field_names) & (set(parameter_names) | set(table_names))
    if clash:
        raise FormulaError(f"names declared both as field and parameter: {', '.join(sorted(clash))}")
    for name in sorted(compiled.names):
        if name in table_names:
            raise FormulaError(f"lookup table {name!r} must be indexed by a category field: {name}[field]")
        if name in ("min", "max"):
            raise FormulaError(f"{name} must be called, e.g. {name}(a, b)")
        if name not in field_names and name not in parameter_names:
            raise FormulaError(f"unknown name {name!r}; declare it as an activity field or parameter")
    for table, key in sorted(compiled.lookups):
        if table not in table_names:
            raise FormulaError(f"{table!r} is not a declared lookup table")
        if key not in field_names:
            raise FormulaError(f"lookup key {key!r} is not a declared activity field")


def formula_references(formula: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """The bare names and the (table, key field) lookups a formula uses; raises FormulaError."""
    compiled = _compile(formula)
    return compiled.names, compiled.lookups


# --------------------------------------------------------------------------------------------
# Activity validation

@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _check_decimal(name: str, number: Decimal) -> Decimal:
    if not number.is_finite():
        raise ActivityError(name, "must be a finite number")
    if abs(number) >= MAX_MAGNITUDE:
        raise ActivityError(name, "is too large")
    # Cheap test first; normalising only when needed lets "1.50000000" through as 1.5.
    too_many_places = number.as_tuple().exponent < -MAX_DECIMAL_PLACES
    if too_many_places and number.normalize(DECIMAL_CONTEXT).as_tuple().exponent < -MAX_DECIMAL_PLACES:
        raise ActivityError(name, f"has more than {MAX_DECIMAL_PLACES} decimal places")
    return number


def _coerce_decimal(name: str, value: object) -> Decimal:
    if isinstance(value, Decimal):
        return _check_decimal(name, value)
    if isinstance(value, bool):
        raise ActivityError(name, "must be a number, not true/false")
    if isinstance(value, int):
        return _check_decimal(name, Decimal(value))
    if isinstance(value, float):
        return _check_decimal(name, Decimal(repr(value)))
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > MAX_NUMBER_TEXT:
            raise ActivityError(name, "must be a number")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ActivityError(name, "must be a number") from None
        return _check_decimal(name, number)
    raise ActivityError(name, "must be a number")


def _coerce_integer(name: str, value: object) -> int:
    if type(value) is int:
        number = value
    elif isinstance(value, bool):
        raise ActivityError(name, "must be a whole number, not true/false")
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, (float, Decimal)):
        decimal = _coerce_decimal(name, value)
        if decimal != decimal.to_integral_value():
            raise ActivityError(name, "must be a whole number")
        number = int(decimal)
    else:
        raise ActivityError(name, "must be a whole number")
    if abs(number) >= MAX_MAGNITUDE:
        raise ActivityError(name, "is too large")
    return number


def _coerce(field: ActivityField, value: object) -> object:
    name = field.name
    kind = field.type
    if kind == "decimal" or kind == "integer":
        number = _coerce_decimal(name, value) if kind == "decimal" else _coerce_integer(name, value)
        if field.min is not None and number < field.min:
            raise ActivityError(name, f"must be at least {field.min}")
        if field.max is not None and number > field.max:
            raise ActivityError(name, f"must be at most {field.max}")
        return number
    if kind == "category":
        if not isinstance(value, str) or field.allowed is None or value not in field.allowed:
            raise ActivityError(name, f"must be one of: {', '.join(field.allowed or ())}")
        return value
    if kind == "string":
        if not isinstance(value, str):
            raise ActivityError(name, "must be text")
        if len(value) > MAX_STRING_LENGTH:
            raise ActivityError(name, f"is longer than {MAX_STRING_LENGTH} characters")
        if field.pattern is not None and not _regex(field.pattern).fullmatch(value):
            raise ActivityError(name, "has an invalid format")
        return value
    raise ActivityError(name, f"has unsupported field type {kind!r}")


def _check_category_patterns(field: ActivityField, normalised: dict) -> None:
    category_field, patterns = field.patterns_by  # type: ignore[misc]
    value = normalised.get(field.name)
    if value is None:
        return
    category = normalised.get(category_field)
    for category_value, pattern in patterns:
        if category == category_value and not _regex(pattern).fullmatch(value):
            raise ActivityError(field.name, f"has an invalid format for {category_field} {category}")


def validate_activity(spec: ScenarioSpec, activity: dict) -> dict:
    """Check activity data against the scenario's field declarations; return a normalised copy.

    Decimal fields become `Decimal`, integer fields `int`; absent optional fields get their
    default (or are left out when there is none). Idempotent: validating the result again gives
    the same dict.
    """
    if not isinstance(activity, dict):
        raise ActivityError("activity", "must be an object")
    fields = spec.fields
    known = {field.name for field in fields}
    unknown = [key for key in activity if key not in known]
    if unknown:
        raise ActivityError(str(unknown[0]), "unknown field")
    normalised: dict = {}
    for field in fields:
        value = activity.get(field.name)
        if value is None:
            if field.required:
                raise ActivityError(field.name, "is required")
            if field.default is None:
                continue
            value = field.default
        normalised[field.name] = _coerce(field, value)
    for field in fields:
        if field.patterns_by is not None:
            _check_category_patterns(field, normalised)
    return normalised


# --------------------------------------------------------------------------------------------
# Calculation, caps and points

def _plain(value: object) -> object:
    """JSON-friendly form of an activity or parameter value: Decimals as plain-notation strings."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def activity_to_json(activity: dict) -> dict:
    """A validated activity with Decimals as strings, ready for a JSONB column."""
    return {key: _plain(value) for key, value in activity.items()}


def _evaluate(spec: ScenarioSpec, compiled: _Compiled, activity: dict) -> Decimal:
    env = {**spec.parameters, **activity}
    try:
        result = compiled.evaluate(env)
    except KeyError as error:
        name = error.args[0] if error.args else "?"
        if any(field.name == name for field in spec.fields):
            raise ActivityError(str(name), "is required by the formula") from None
        for table, key in compiled.lookups:
            if activity.get(key) == name:
                raise ActivityError(key, f"has no {table} value for {name!r}") from None
        raise FormulaError(f"formula refers to {name!r}, which the scenario does not declare") from None
    except TypeError:
        raise FormulaError("formula uses a lookup table or value of the wrong kind") from None
    except DivisionByZero:
        raise ActivityError("formula", "division by zero with this activity") from None
    except DecimalException as error:
        raise ActivityError("formula", f"arithmetic error ({type(error).__name__})") from None
    result = result if isinstance(result, Decimal) else Decimal(result)
    if not result.is_finite():  # e.g. 0 ** -2 gives Infinity without signalling DivisionByZero
        raise ActivityError("formula", "division by zero with this activity")
    return result


def _parameters_used(spec: ScenarioSpec, compiled: _Compiled, activity: dict) -> dict:
    used = {name: _plain(spec.parameters[name]) for name in compiled.names if name in spec.parameters}
    for table, key in compiled.lookups:
        category = activity[key]
        used[f"{table}[{category}]"] = _plain(spec.parameters[table][category])
    return used


def calculate(spec: ScenarioSpec, activity: dict) -> Calculation:
    """Grams CO2e avoided for one behaviour, with the trace stored alongside the credit.

    Validates the activity first (idempotent, so already-validated data is fine). The exact value
    is floored to whole grams; a negative result (the behaviour emitted more than the baseline)
    credits 0 grams but keeps the negative `exact` in the trace.
    """
    compiled = _compile(spec.formula)
    activity = validate_activity(spec, activity)
    exact = _evaluate(spec, compiled, activity)
    grams = max(0, int(exact.to_integral_value(rounding=ROUND_FLOOR)))
    trace = {
        "scenario": spec.code,
        "scenario_version": spec.version,
        "methodology": spec.methodology_code,
        "methodology_version": spec.methodology_version,
        "formula": spec.formula,
        "activity": activity_to_json(activity),
        "parameters": _parameters_used(spec, compiled, activity),
        "exact": format(exact, "f"),
        "grams": grams,
    }
    return Calculation(grams=grams, exact=exact, trace=trace)


class Calculator:
    """One scenario version's `calculate`, prepared once for a whole batch of events.

    `calculate(activity)` is exactly `calculate(spec, activity)`. `calculate_stored(activity)` is
    for activity that `validate_activity` already normalised under this same version and that was
    stored as `activity_to_json` wrote it (ingestion does both): it only turns the decimal fields
    back into `Decimal` instead of validating again, and reuses the parameters part of the trace
    (per lookup key) instead of rebuilding it per event. Anything not in that stored form takes the
    full path, so the result is always the one `calculate` gives. Measured: ~3x cheaper per event.
    """

    __slots__ = ("spec", "_compiled", "_decimals", "_integers", "_always", "_known", "_scalars", "_lookups",
                 "_used", "_header")

    def __init__(self, spec: ScenarioSpec) -> None:
        self.spec = spec
        self._compiled = compiled = _compile(spec.formula)
        fields = spec.fields
        self._decimals = tuple(field.name for field in fields if field.type == "decimal")
        self._integers = tuple(field.name for field in fields if field.type == "integer")
        self._always = frozenset(field.name for field in fields if field.required or field.default is not None)
        self._known = frozenset(field.name for field in fields)
        self._scalars = {name: _plain(spec.parameters[name]) for name in compiled.names if name in spec.parameters}
        self._lookups = tuple(compiled.lookups)
        self._used: dict[tuple[Any, ...], dict] = {}
        self._header = (spec.code, spec.version, spec.methodology_code, spec.methodology_version, spec.formula)

    def calculate(self, activity: dict) -> Calculation:
        return calculate(self.spec, activity)

    def calculate_stored(self, stored: dict) -> Calculation:
        activity = self._from_stored(stored)
        if activity is None:
            return calculate(self.spec, stored)
        exact = _evaluate(self.spec, self._compiled, activity)
        grams = max(0, int(exact.to_integral_value(rounding=ROUND_FLOOR)))
        code, version, methodology, methodology_version, formula = self._header
        trace = {
            "scenario": code,
            "scenario_version": version,
            "methodology": methodology,
            "methodology_version": methodology_version,
            "formula": formula,
            "activity": stored,
            "parameters": self._parameters_used(activity),
            "exact": format(exact, "f"),
            "grams": grams,
        }
        return Calculation(grams=grams, exact=exact, trace=trace)

    def _from_stored(self, stored: object) -> dict | None:
        """The validated activity back from its stored JSON form, or None when it is not in that form."""
        if type(stored) is not dict or not (self._always <= stored.keys() <= self._known):
            return None
        activity = dict(stored)
        for name in self._decimals:
            value = activity.get(name)
            if value is not None:
                if type(value) is not str:
                    return None
                try:
                    activity[name] = Decimal(value)
                except InvalidOperation:
                    return None
        for name in self._integers:
            value = activity.get(name)
            if value is not None and type(value) is not int:
                return None
        return activity

    def _parameters_used(self, activity: dict) -> dict:
        if not self._lookups:
            return self._scalars
        key = tuple(activity[field] for _, field in self._lookups)
        used = self._used.get(key)
        if used is None:
            used = _parameters_used(self.spec, self._compiled, activity)
            if len(self._used) < 1024:  # lookup keys are declared category values: a handful
                self._used[key] = used
        return used


def cap_quantity(spec: ScenarioSpec, activity: dict, grams: int) -> Decimal:
    """How much of the scenario's cap unit one event consumes."""
    if spec.cap_unit == "events":
        return Decimal(1)
    if spec.cap_unit == "grams":
        return Decimal(grams)
    if spec.cap_unit not in activity:
        raise ActivityError(spec.cap_unit, "is required to apply the cap")
    return Decimal(activity[spec.cap_unit])


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def points_for(points_per_gram: Decimal, grams_before_today: int, grams: int) -> int:
    """Points for `grams` credited on top of `grams_before_today` for the same scenario and day.

    BRIEF R3.3: a fractional rate is applied to the running daily total, so five 5 g e-invoices at
    0.1 point/gram earn 0, 1, 0, 1, 0 points: together floor(0.1 × 25) = 2, not 5 × floor(0.5) = 0.
    """
    rate = Decimal(points_per_gram)
    if rate == 1:
        return grams
    multiply = DECIMAL_CONTEXT.multiply
    after = _floor(multiply(rate, grams_before_today + grams))
    before = _floor(multiply(rate, grams_before_today))
    return after - before


def capped_grams(grams: int, quantity: Decimal, allowed_quantity: Decimal) -> int:
    """The part of `grams` that fits in what is left of the cap; the rest is recorded as capped.

    A partly fitting event is credited pro rata: 12 kg of paper with 8 kg left under the daily
    cap credits floor(grams × 8 / 12).
    """
    if allowed_quantity >= quantity:
        return grams
    if allowed_quantity <= 0:
        return 0
    within = DECIMAL_CONTEXT.multiply(grams, Decimal(allowed_quantity))
    share = DECIMAL_CONTEXT.divide(within, Decimal(quantity))
    return _floor(share)
