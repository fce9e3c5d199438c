"""Checks of the values clients send, each failing with a ValidationError at its ``loc``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from .errors import ValidationError
from .states import Status

#: Bounds of the strings a client sends (documented in docs/http.md): keys and names are
#: identifiers; a reason is a sentence or two for people.
MAX_KEY_LENGTH = 255
MAX_NAME_LENGTH = 255
MAX_REASON_LENGTH = 2000

#: Bounds of a run's definition (documented in docs/concepts.md#limits): its size as compact
#: UTF-8 JSON, how deep objects and arrays nest (the definition itself is level 1), how many
#: keys all its objects hold together, and how long one key may be. A string value may take
#: the whole size. They are checked before the kind sees the definition, so a huge one is
#: refused at once and never turned into one error per key.
MAX_DEFINITION_BYTES = 1024 * 1024
MAX_DEFINITION_DEPTH = 32
MAX_DEFINITION_KEYS = 10_000
MAX_DEFINITION_KEY_LENGTH = 1024
#: Beyond either, a definition is checked off the event loop (:func:`is_large`).
LARGE_DEFINITION_VALUES = 2_000
LARGE_DEFINITION_BYTES = 64 * 1024
#: Values whose JSON size is one unit in :func:`definition`'s lower bound.
_SCALARS = frozenset({int, float, bool, type(None)})


def run_id(value: Any, loc: tuple[str, ...] = ("run_id",)) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise ValidationError.at(loc, f"not a valid UUID: {value!r}", "uuid_parsing")


def optional_uuid(value: Any, loc: tuple[str, ...]) -> UUID | None:
    return None if value is None else run_id(value, loc)


def bounded_int(value: Any, loc: tuple[str, ...], low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError.at(loc, "value is not a valid integer", "int_type")
    if value < low:
        raise ValidationError.at(loc, f"must be >= {low}", "greater_than_equal")
    if high is not None and value > high:
        raise ValidationError.at(loc, f"must be <= {high}", "less_than_equal")
    return value


def key(value: Any, loc: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError.at(loc, "must be a string", "string_type")
    if not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise ValidationError.at(loc, f"must be 1 to {MAX_KEY_LENGTH} characters", "string_length")
    return value


def optional_str(value: Any, loc: tuple[str, ...], max_length: int = MAX_NAME_LENGTH) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError.at(loc, "must be a string", "string_type")
    if len(value) > max_length:
        raise ValidationError.at(loc, f"must be at most {max_length} characters", "string_too_long")
    return value


def status(value: Any, loc: tuple[str, ...] = ("status",)) -> Status | None:
    if value is None or isinstance(value, Status):
        return value
    try:
        return Status(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise ValidationError.at(
            loc, f"unknown status {value!r}; one of {allowed}", "enum"
        ) from None


def definition(value: Any, loc: tuple[str | int, ...] = ("definition",)) -> Any:
    """``value`` unchanged if it is within the definition bounds; else a ValidationError at
    ``loc`` (a non-object is left to the kind, which says what it takes)."""
    if type(value) is dict and not value:  # most definitions: nothing to walk
        return value
    if not isinstance(value, Mapping):
        return value
    keys = 0
    size = 0  # a lower bound of the JSON size, so the walk stops early on a huge value
    # (item, its parent's path, its key or index in the parent, depth): a path is built only
    # for a container, whose children need it, not for each of a big list's numbers.
    stack: list[tuple[Any, tuple[str | int, ...], str | int | None, int]] = [(value, loc, None, 1)]
    while stack:
        item, parent, step, depth = stack.pop()
        kind = type(item)
        if kind is str:
            size += len(item) + 2
        elif kind in _SCALARS:
            size += 1
        elif isinstance(item, Mapping | list | tuple):
            where = parent if step is None else (*parent, step)
            if depth > MAX_DEFINITION_DEPTH:
                raise ValidationError.at(
                    where, f"nested deeper than {MAX_DEFINITION_DEPTH}", "json_too_deep"
                )
            size += 1 + max(len(item), 1)  # brackets and commas
            if isinstance(item, Mapping):
                keys += len(item)
                if keys > MAX_DEFINITION_KEYS:
                    raise ValidationError.at(
                        loc, f"more than {MAX_DEFINITION_KEYS} keys in all", "too_many_keys"
                    )
                for k, v in item.items():
                    text = str(k)
                    if len(text) > MAX_DEFINITION_KEY_LENGTH:
                        raise ValidationError.at(
                            where,
                            f"key of {len(text)} characters; at most {MAX_DEFINITION_KEY_LENGTH}",
                            "key_too_long",
                        )
                    size += len(text) + 3  # "key":
                    stack.append((v, where, text, depth + 1))
            else:
                stack.extend((v, where, i, depth + 1) for i, v in enumerate(item))
        elif isinstance(item, str):
            size += len(item) + 2
        else:
            size += 1
        if size > MAX_DEFINITION_BYTES:
            break
    if size > MAX_DEFINITION_BYTES or _json_size(value) > MAX_DEFINITION_BYTES:
        raise ValidationError.at(
            loc, f"larger than {MAX_DEFINITION_BYTES} bytes of JSON", "too_large"
        )
    return value


def is_large(value: Any) -> bool:
    """Whether ``value`` holds more than :data:`LARGE_DEFINITION_VALUES` values or
    :data:`LARGE_DEFINITION_BYTES` bytes of JSON (roughly): checking it (:func:`definition`)
    would hold the event loop long enough to slow every other request, so callers on one
    check it in a worker thread. Looks at no more than that many values."""
    if not isinstance(value, Mapping):
        return False
    values = size = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item)
        elif isinstance(item, Mapping | list | tuple):
            values += len(item)
            if values > LARGE_DEFINITION_VALUES:
                return True
            if isinstance(item, Mapping):
                for k, v in item.items():
                    size += len(str(k))
                    stack.append(v)
            else:
                stack.extend(item)
        if size > LARGE_DEFINITION_BYTES:
            return True
    return False


def _json_size(value: Any) -> int:
    """The size of ``value`` as compact UTF-8 JSON (what the HTTP API shows of it)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):  # not JSON at all: the store refuses it, not this bound
        return 0
    return len(text.encode("utf-8", "surrogatepass"))
