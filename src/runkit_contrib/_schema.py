"""JSON Schema read from attrs classes: kind configurations, and the API's wire models.

Kind configurations (:func:`config_schema`): types map the obvious way (``int`` ->
integer, ``X | None`` -> anyOf with null, ``Literal`` and enums -> enum, nested attrs
classes -> objects); field names are camelCase like the config converter's; a field
without a default is required; extra keys are forbidden (the converter forbids them too).
attrs' built-in validators (``ge``, ``lt``, ``in_``, ``max_len``, ``matches_re``, ``and_``,
``optional``) become the matching keywords, so a schema-driven client (or fuzzer)
generates definitions the kind accepts.

Wire models (:func:`model_schema`, the classes of ``_wire``): a field's type gives its JSON
type, ``X | None`` adding ``null`` to it; its metadata (``_wire.doc``) gives its description
and further keywords; a field without a default is required; a model that has a schema of
its own in the document is referred to by ``$ref``, any other is written inline.
"""

from __future__ import annotations

import collections.abc
import contextlib
import enum
import types
import typing
from collections.abc import Collection
from datetime import date, datetime
from typing import Any
from uuid import UUID

import attrs

from runkit import camel

_SCALARS: dict[Any, dict[str, Any]] = {
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    datetime: {"type": "string", "format": "date-time"},
    date: {"type": "string", "format": "date"},
    UUID: {"type": "string", "format": "uuid"},
    type(None): {"type": "null"},
}
_ARRAYS = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_BOUNDS = {">=": "minimum", ">": "exclusiveMinimum", "<=": "maximum", "<": "exclusiveMaximum"}


def config_schema(cls: type[Any]) -> dict[str, Any]:
    # String annotations (``from __future__ import annotations``) need resolving; a hint
    # that cannot be resolved describes its field as "any value" instead of failing.
    with contextlib.suppress(Exception):
        attrs.resolve_types(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        schema = type_schema(field.type)
        _apply_validator(schema, field.validator)
        name = camel(field.name)
        if field.default is attrs.NOTHING:
            required.append(name)
        elif not isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            default = _jsonable(field.default)
            if default is not _SKIP:
                schema["default"] = default
        properties[name] = schema
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = required
    if cls.__doc__:
        out["description"] = " ".join(cls.__doc__.split())
    return out


def type_schema(tp: Any) -> dict[str, Any]:
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [type_schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if isinstance(tp, type) and attrs.has(tp):
        return config_schema(tp)
    if origin in _ARRAYS or tp in _ARRAYS:
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return {"type": "array", "prefixItems": [type_schema(a) for a in args]}
        items = type_schema(args[0]) if args else {}
        return {"type": "array", "items": items}
    if origin in _MAPPINGS or tp in _MAPPINGS:
        values = type_schema(args[1]) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": values}
    return {}  # Any, or a type we cannot describe: any JSON value


def _apply_validator(schema: dict[str, Any], validator: Any) -> None:
    if validator is None:
        return
    for inner in getattr(validator, "_validators", ()):  # and_
        _apply_validator(schema, inner)
    if hasattr(validator, "validator") and type(validator).__name__ == "_OptionalValidator":
        _apply_validator(schema, validator.validator)
    op = getattr(validator, "compare_op", None)
    if op in _BOUNDS:
        schema[_BOUNDS[op]] = validator.bound
    if hasattr(validator, "options"):
        schema["enum"] = [o.value if isinstance(o, enum.Enum) else o for o in validator.options]
    is_array = schema.get("type") == "array"
    if hasattr(validator, "max_length"):
        schema["maxItems" if is_array else "maxLength"] = validator.max_length
    if hasattr(validator, "min_length"):
        schema["minItems" if is_array else "minLength"] = validator.min_length
    pattern = getattr(validator, "pattern", None)
    if pattern is not None and hasattr(pattern, "pattern"):
        schema["pattern"] = pattern.pattern


_SKIP = object()


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list | frozenset):
        items = [_jsonable(v) for v in value]
        return _SKIP if any(i is _SKIP for i in items) else items
    return _SKIP


# ------------------------------------------------------------------ wire models -----------
REF = "#/components/schemas/"


def model_schema(
    cls: type[Any], named: Collection[type[Any]] = (), *, closed: bool = False
) -> dict[str, Any]:
    """The JSON Schema of the wire model ``cls``; a field whose model is in ``named`` is a
    ``$ref`` to it. ``closed``: no other keys are accepted (a request body)."""
    attrs.resolve_types(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        name = camel(field.name)
        schema = _wire_type(field.type, named)
        schema.update(field.metadata.get("schema", {}))
        if field.metadata.get("description"):
            schema["description"] = field.metadata["description"]
        properties[name] = schema
        if field.default is attrs.NOTHING:
            required.append(name)
    out: dict[str, Any] = {"type": "object"}
    if cls.__doc__:
        out["description"] = " ".join(cls.__doc__.split())
    out["properties"] = properties
    if required:
        out["required"] = required
    if closed:
        out["additionalProperties"] = False
    return out


def _wire_type(tp: Any, named: Collection[type[Any]]) -> dict[str, Any]:
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return _union([_wire_type(a, named) for a in members], len(members) < len(args))
    if origin is typing.Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        values = list(args) if origin is typing.Literal else [m.value for m in tp]
        out: dict[str, Any] = {"enum": values}
        if all(isinstance(v, str) for v in values):
            out = {"type": "string", **out}
        return out
    if isinstance(tp, type) and attrs.has(tp):
        return {"$ref": REF + tp.__name__} if tp in named else model_schema(tp, named)
    if origin in _ARRAYS or tp in _ARRAYS:
        return {"type": "array", "items": _wire_type(args[0], named) if args else {}}
    if origin in _MAPPINGS or tp in _MAPPINGS:
        values_schema = _wire_type(args[1], named) if len(args) == 2 else {}
        if not values_schema:
            return {"type": "object"}
        return {"type": "object", "additionalProperties": values_schema}
    return {}  # Any: any JSON value (its field's metadata says more)


def _union(schemas: list[dict[str, Any]], nullable: bool) -> dict[str, Any]:
    """``X | Y | None``: one ``type`` list when the members are plain types sharing a
    format (``["string", "null"]`` with ``format: uuid``), else ``anyOf``."""
    formats = {s.get("format") for s in schemas}
    plain = len(formats) == 1 and all(
        isinstance(s.get("type"), str) and set(s) <= {"type", "format"} for s in schemas
    )
    if not plain:
        return {"anyOf": [*schemas, *([{"type": "null"}] if nullable else [])]}
    names = [s["type"] for s in schemas] + (["null"] if nullable else [])
    out: dict[str, Any] = {"type": names[0] if len(names) == 1 else names}
    (fmt,) = formats
    if fmt is not None:
        out["format"] = fmt
    return out
