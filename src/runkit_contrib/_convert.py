"""The API's JSON conventions, for the converter of ``_wire``: camelCase keys, RFC 3339 UTC
timestamps ending in ``Z``, UUIDs and statuses as strings, and no coercion (cattrs would
turn ``5`` into ``"5"``; a JSON value of the wrong type is refused with :class:`WrongType`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from runkit import Status, camel

#: A JSON object: what a run's definition, progress or result is, and a log entry's data.
JSON = dict[str, Any]


def format_time(when: datetime) -> str:
    # isoformat is C and writes microseconds only when there are some, as the wire does.
    return when.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"


def parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"timestamp without timezone: {text!r}")
    return when.astimezone(UTC)


class WrongType(TypeError):
    """A JSON value of the wrong type, with the message and ``type`` a 422 detail shows."""

    def __init__(self, msg: str, type: str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.type = type


def _strict(expected: type | tuple[type, ...], msg: str, kind: str) -> Callable[[Any, type], Any]:
    def hook(value: Any, _: type) -> Any:
        if isinstance(value, bool) and expected is not bool:
            raise WrongType(msg, kind)
        if expected is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, expected):
            raise WrongType(msg, kind)
        return value

    return hook


def make_converter(
    is_model: Callable[[Any], bool], closed: Collection[type[Any]]
) -> cattrs.Converter:
    """A converter for the attrs classes ``is_model`` accepts: camelCase keys, values of
    exactly their JSON type; structuring one of ``closed`` refuses keys it does not have."""
    conv = cattrs.Converter()
    conv.register_unstructure_hook(datetime, format_time)
    conv.register_structure_hook(datetime, lambda v, _: parse_time(v))
    conv.register_unstructure_hook(UUID, str)
    conv.register_structure_hook(UUID, lambda v, _: UUID(v))
    conv.register_unstructure_hook(Status, lambda s: s.value)
    conv.register_structure_hook(Status, lambda v, _: Status(v))
    # A JSON object field holds JSON already: passed on as it is, not copied value by value.
    conv.register_unstructure_hook_func(lambda t: t == JSON, lambda v: v)
    conv.register_structure_hook(str, _strict(str, "must be a string", "string_type"))
    conv.register_structure_hook(int, _strict(int, "must be an integer", "int_type"))
    conv.register_structure_hook(float, _strict(float, "must be a number", "float_type"))
    conv.register_structure_hook(bool, _strict(bool, "must be a boolean", "bool_type"))
    # A validation problem's ``loc``: names and indexes (a batch's answer holds problems).
    conv.register_structure_hook(
        str | int, _strict((str, int), "must be a string or an integer", "value_error")
    )

    def renames(cls: type[Any]) -> dict[str, Any]:
        return {a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)}

    def structure(cls: type[Any]) -> Callable[[Any, type], Any]:
        forbid = cls in closed
        return make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=forbid, **renames(cls))

    def unstructure(cls: type[Any]) -> Callable[[Any], Any]:
        return make_dict_unstructure_fn(cls, conv, **renames(cls))

    conv.register_structure_hook_factory(is_model, structure)
    conv.register_unstructure_hook_factory(is_model, unstructure)
    return conv
