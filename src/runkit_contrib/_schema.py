"""JSON Schema read from attrs classes: kind configurations (the core's
:func:`runkit.config_schema`, re-exported here), and the API's wire models.

Kind configurations: types map the obvious way (``int`` ->
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
import enum
import types
import typing
from collections.abc import Collection
from datetime import date, datetime
from typing import Any
from uuid import UUID

import attrs

from runkit import camel, config_schema

__all__ = ["REF", "config_schema", "model_schema"]

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
