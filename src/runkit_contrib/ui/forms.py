"""The new-run form's fields, read from a kind's definition JSON Schema
(:func:`runkit_contrib._kinds.definition_schema`): one field a top-level property.

Enums become selects, booleans checkboxes, integers and numbers number inputs, strings text
inputs; objects, arrays and anything else (unions, any value) JSON textareas. A property
that may also be null (``anyOf [X, null]`` or ``type: [X, "null"]``) is treated as X that
may be left empty. Values come from the kind's example first, then the schema's default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

#: Input types by JSON Schema type.
_WIDGETS = {"boolean": "checkbox", "integer": "number", "number": "number", "string": "text"}


@attrs.frozen
class Field:
    """One form field: ``name`` is ``definition.<prop>``."""

    prop: str
    #: ``select``, ``checkbox``, ``number``, ``text`` or ``json``.
    widget: str
    #: The JSON type the browser sends: ``enum``, ``boolean``, ``integer``, ``number``,
    #: ``string`` or ``json``.
    type: str
    required: bool
    nullable: bool
    #: The prefilled value as the input shows it (text; for a checkbox "true" or "").
    value: str
    help: str = ""
    #: Enum choices: (value as the option's ``value``, its JSON, label).
    options: tuple[tuple[str, str, str], ...] = ()
    #: Number bounds and step, text length and pattern (``attrs`` for the input).
    minimum: float | None = None
    maximum: float | None = None
    step: str = ""
    min_length: int | None = None
    max_length: int | None = None
    pattern: str = ""
    placeholder: str = ""
    #: The type and bounds, for people: "integer, at least 1; default 2".
    hint: str = ""

    @property
    def name(self) -> str:
        return f"definition.{self.prop}"

    @property
    def id(self) -> str:
        return f"field-{self.prop}"

    @property
    def rows(self) -> int:
        """A JSON textarea's height: its prefilled text, 3 to 12 lines."""
        return min(12, max(3, self.value.count("\n") + 1))


_NO_VALUE = object()


def _nullable_core(schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """``schema`` without its null alternative, and whether it had one."""
    any_of = schema.get("anyOf")
    if isinstance(any_of, list):
        rest = [s for s in any_of if not (isinstance(s, Mapping) and s.get("type") == "null")]
        nullable = len(rest) < len(any_of)
        if len(rest) == 1 and isinstance(rest[0], Mapping):
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**rest[0], **merged}, nullable
        return schema, nullable
    kind = schema.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        nullable = len(types) < len(kind)
        if len(types) == 1:
            return {**schema, "type": types[0]}, nullable
    return schema, False


def _text(value: Any, json_type: str) -> str:
    """``value`` as its input shows it."""
    if value is _NO_VALUE or value is None:
        return ""
    if json_type == "boolean":
        return "true" if value is True else ""
    if json_type == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    if json_type in ("integer", "number") and isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _help(schema: Mapping[str, Any]) -> str:
    text = schema.get("description")
    return " ".join(str(text).split()) if isinstance(text, str) else ""


def hint_for(core: Mapping[str, Any], nullable: bool, default: Any) -> str:
    """What a value must be, from the schema's keywords."""
    kind = core.get("type")
    enum = core.get("enum")
    if isinstance(enum, list):
        choices = ", ".join(v if isinstance(v, str) else json.dumps(v) for v in enum)
        parts = [f"one of {choices}"]
    else:
        parts = [kind if isinstance(kind, str) else "any JSON value"]
    for key, text in (
        ("minimum", "at least"),
        ("exclusiveMinimum", "more than"),
        ("maximum", "at most"),
        ("exclusiveMaximum", "less than"),
        ("minLength", "at least {} character"),
        ("maxLength", "at most {} character"),
        ("minItems", "at least {} item"),
        ("maxItems", "at most {} item"),
    ):
        if key not in core:
            continue
        value = core[key]
        if "{}" in text:
            parts.append(text.format(value) + ("" if value == 1 else "s"))
        else:
            parts.append(f"{text} {value}")
    if isinstance(core.get("pattern"), str):
        parts.append(f"matching {core['pattern']}")
    out = ", ".join(str(p) for p in parts)
    if nullable:
        out += " (may be empty)"
    if default is not _NO_VALUE:
        out += f"; default {json.dumps(default, ensure_ascii=False)}"
    return out


def field_for(
    prop: str, schema: Mapping[str, Any], required: bool, example: Mapping[str, Any] | None
) -> Field:
    field = _field_for(prop, schema, required, example)
    core, nullable = _nullable_core(schema)
    default = schema.get("default", core.get("default", _NO_VALUE))
    return attrs.evolve(field, hint=hint_for(core, nullable, default))


def _field_for(
    prop: str, schema: Mapping[str, Any], required: bool, example: Mapping[str, Any] | None
) -> Field:
    core, nullable = _nullable_core(schema)
    if example is not None and prop in example:
        value: Any = example[prop]
    else:
        value = schema.get("default", core.get("default", _NO_VALUE))
    help_text = _help(schema) or _help(core)
    enum = core.get("enum")
    if isinstance(enum, list) and enum:
        options = tuple(
            (
                v if isinstance(v, str) else json.dumps(v),
                json.dumps(v),
                str(v) if v is not None else "null",
            )
            for v in enum
        )
        if value is _NO_VALUE or value is None:
            chosen = ""
        else:
            chosen = value if isinstance(value, str) else json.dumps(value)
        return Field(prop, "select", "enum", required, nullable, chosen, help_text, options)
    kind = core.get("type")
    if not isinstance(kind, str) or kind not in _WIDGETS:
        return Field(
            prop,
            "json",
            "json",
            required,
            nullable,
            _text(value, "json"),
            help_text,
            placeholder=_json_placeholder(core),
        )
    widget = _WIDGETS[kind]
    bounds: dict[str, Any] = {}
    if kind in ("integer", "number"):
        bounds["minimum"] = _number(core.get("minimum"))
        bounds["maximum"] = _number(core.get("maximum"))
        bounds["step"] = "1" if kind == "integer" else "any"
    elif kind == "string":
        bounds["min_length"] = _int(core.get("minLength"))
        bounds["max_length"] = _int(core.get("maxLength"))
        pattern = core.get("pattern")
        bounds["pattern"] = pattern if isinstance(pattern, str) else ""
        fmt = core.get("format")
        if isinstance(fmt, str):
            bounds["placeholder"] = {"uuid": "a UUID", "date-time": "2025-01-31T12:00:00Z"}.get(
                fmt, fmt
            )
    return Field(prop, widget, kind, required, nullable, _text(value, kind), help_text, **bounds)


def _json_placeholder(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "array":
        return "[ ... ]  (JSON)"
    if kind == "object":
        return "{ ... }  (JSON)"
    return "any JSON value"


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def fields_for(schema: Mapping[str, Any], example: Mapping[str, Any] | None) -> list[Field]:
    """The form's fields for a kind whose definition fits ``schema``; none for a kind that
    takes any object (the raw JSON editor is its form)."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return []
    required = schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    return [
        field_for(str(prop), sub if isinstance(sub, Mapping) else {}, prop in needed, example)
        for prop, sub in properties.items()
    ]


def initial_definition(fields: list[Field], example: Mapping[str, Any] | None) -> str:
    """The raw editor's first text: the example, else what the prefilled fields hold."""
    if example is not None:
        return json.dumps(dict(example), indent=2, ensure_ascii=False)
    values: dict[str, Any] = {}
    for f in fields:
        if not f.value:
            continue
        if f.type == "boolean":
            values[f.prop] = True
        elif f.type in ("json", "enum"):
            try:
                values[f.prop] = json.loads(f.value) if f.type == "json" else _option(f)
            except ValueError:
                continue
        elif f.type in ("integer", "number"):
            values[f.prop] = json.loads(f.value)
        else:
            values[f.prop] = f.value
    return json.dumps(values, indent=2, ensure_ascii=False)


def _option(f: Field) -> Any:
    for value, encoded, _ in f.options:
        if value == f.value:
            return json.loads(encoded)
    raise ValueError(f.value)


#: A config docstring's opening list of its fields, "``{title, message, ...}``" (or two
#: joined by "or"), and what ends it: the form's fields say the same, one by one.
_FIELD_LIST = re.compile(r"^``\{[^`]*\}``(?:\s+or\s+``\{[^`]*\}``)*\s*[.;:,]?\s*")


def schema_help(description: object) -> list[tuple[str, bool]]:
    """A kind's definition schema's description (its config class's docstring) for the
    form: without an opening list of the fields, as (text, is code) parts, reST literals
    (````x````) as code; no parts without a description."""
    if not isinstance(description, str):
        return []
    text = _FIELD_LIST.sub("", " ".join(description.split()), count=1)
    parts = [(part, i % 2 == 1) for i, part in enumerate(text.split("``")) if part]
    if parts and not parts[0][1]:  # a sentence begun after the list: its capital back
        first = parts[0][0]
        parts[0] = (first[:1].upper() + first[1:], False)
    return parts
