"""The JSON Schema of a kind's configuration, read from its attrs class: what a definition of
the kind may hold. The core's own, so that kinds can use it (``call_agent`` gives it to the
model as a tool's parameters) without the HTTP layer, which publishes the same schemas in
its OpenAPI document.

Types map the obvious way (``int`` -> integer, ``X | None`` -> anyOf with null, ``Literal``
and enums -> enum, nested attrs classes -> objects); field names are camelCase like the
config converter's (:func:`~.kind.camel`); a field without a default is required; extra
keys are forbidden (the converter forbids them too). attrs' built-in validators (``ge``,
``lt``, ``in_``, ``min_len``, ``max_len``, ``matches_re``, ``and_``, ``optional``) become
the matching keywords, so a schema-driven client (a fuzzer, a model) writes definitions
the kind accepts. The class docstring is the schema's ``description``. Pure.
"""

from __future__ import annotations

import collections.abc
import contextlib
import enum
import types
import typing
from datetime import date, datetime
from typing import Any
from uuid import UUID

import attrs

from .kind import camel

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
_SKIP = object()


def config_schema(cls: type[Any]) -> dict[str, Any]:
    """The JSON Schema of the attrs class ``cls`` (a kind's ``config``)."""
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
    """The JSON Schema of values of the type hint ``tp`` (``{}``: any JSON value)."""
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list | frozenset):
        items = [_jsonable(v) for v in value]
        return _SKIP if any(i is _SKIP for i in items) else items
    return _SKIP
