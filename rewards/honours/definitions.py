"""Reading rewards/honours/badges.yaml: every field checked before anything is written."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from rewards.honours.rules import validate_rule

DEFAULT_PATH = Path(__file__).with_name("badges.yaml")
_CODE = validate.Regexp(r"^[a-z][a-z0-9_]{0,31}$")


class DefinitionError(ValueError):
    """The badge file is not valid; the message names the entry and field."""


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _Name(_Strict):
    zh = fields.String(required=True, validate=validate.Length(min=1, max=32))
    en = fields.String(required=True, validate=validate.Length(min=1, max=64))


class _Description(_Strict):
    zh = fields.String(required=True, validate=validate.Length(min=1, max=255))
    en = fields.String(required=True, validate=validate.Length(min=1, max=255))


class _Rule(Schema):
    """`{type: ..., <params>}`; the params are checked by the rule type's own schema."""

    class Meta:
        unknown = "include"

    type = fields.String(required=True)

    @post_load
    def _params(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        rule_type = data.pop("type")
        return {"type": rule_type, "params": validate_rule(rule_type, data)}


class _Badge(_Strict):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,63}$"))
    rule = fields.Nested(_Rule, required=True)
    name = fields.Nested(_Name, required=True)
    description = fields.Nested(_Description, required=True)
    icon = fields.String(required=True, validate=validate.Length(min=1, max=64))


class _Level(_Strict):
    code = fields.String(required=True, validate=_CODE)
    threshold_grams = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10**13))
    name = fields.Nested(_Name, required=True)
    icon = fields.String(required=True, validate=validate.Length(min=1, max=64))


class _File(_Strict):
    levels = fields.List(fields.Nested(_Level), required=True, validate=validate.Length(min=1))
    badges = fields.List(fields.Nested(_Badge), required=True)

    @validates_schema
    def _unique(self, data: dict[str, Any], **_: Any) -> None:
        for key, attr in (("levels", "code"), ("levels", "threshold_grams"), ("badges", "code")):
            values = [item[attr] for item in data.get(key, [])]
            if len(values) != len(set(values)):
                raise ValidationError(f"duplicate {attr}", key)
        if data.get("levels") and min(level["threshold_grams"] for level in data["levels"]) != 0:
            raise ValidationError("the first level starts at 0 grams", "levels")


def read_definitions(path: Path | str | None = None) -> dict[str, Any]:
    """{levels: [...], badges: [...]} from the YAML file, or DefinitionError."""
    path = Path(path) if path else DEFAULT_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise DefinitionError(f"{path}: {error}") from None
    try:
        return _File().load(raw if isinstance(raw, dict) else {})
    except ValidationError as error:
        raise DefinitionError(f"{path}: {error.messages}") from None
