"""Checks of the values clients send, each failing with a ValidationError at its ``loc``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .errors import ValidationError
from .states import Status

#: Bounds of the strings a client sends (documented in docs/http.md): keys and names are
#: identifiers; a reason is a sentence or two for people.
MAX_KEY_LENGTH = 255
MAX_NAME_LENGTH = 255
MAX_REASON_LENGTH = 2000


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
