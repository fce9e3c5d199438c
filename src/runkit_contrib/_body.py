"""Request bodies, query values and path parameters: read with a byte budget, parse, check
the shape (a body's with the wire converter, into its model of ``_wire``).

Decisions (docs/http.md): a non-empty body must be ``application/json`` (or ``+json``),
else 415; bytes are counted while reading so a chunked or lying upload stops at the limit
with 413; bad JSON, bad UTF-8, nesting deeper than :data:`MAX_DEPTH`, NUL characters and
lone surrogates answer 422 at ``loc`` ``["body", ...]`` (storage backends such as
PostgreSQL cannot hold the last two, so they are refused at the door, not with a 500).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar
from uuid import UUID

import anyio.to_thread
import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError
from starlette.requests import Request

from runkit import ErrorDetail, ValidationError, camel

from ._convert import WrongType
from ._errors import HttpError, invalid
from ._wire import converter

M = TypeVar("M", bound=attrs.AttrsInstance)

MAX_DEPTH = 64
#: The core's bound of keys and names (docs/http.md), checked here where the value is HTTP's.
MAX_KEY = 255
#: Bodies larger than this are parsed and checked in a worker thread.
THREAD_BYTES = 64 * 1024
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes "²", which int() refuses
#: The spellings a boolean query value may take: JSON's and the usual digits, nothing
#: looser ("yes", "on", "True"), so a typo is refused instead of read as false.
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and _DIGITS.fullmatch(declared) and int(declared) > max_bytes:
        raise HttpError(413, f"request body exceeds {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:  # counted while reading: Content-Length is not trusted
            raise HttpError(413, f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def json_object(request: Request, max_bytes: int, *, required: bool) -> dict[str, Any]:
    """The body as a JSON object; ``{}`` for an empty body unless ``required``."""
    raw = await read_body(request, max_bytes)
    if not raw.strip():
        if required:
            raise invalid(("body",), "field required", "missing")
        return {}
    if not _is_json(request.headers.get("content-type")):
        raise HttpError(415, "request body must be application/json")
    if len(raw) > THREAD_BYTES:  # parsed off the event loop, which it would hold up
        return await anyio.to_thread.run_sync(_parse_object, raw)
    return _parse_object(raw)


def _parse_object(raw: bytes) -> dict[str, Any]:
    try:
        # json.loads(raw, ...) exactly, without making a decoder for each call.
        value = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise invalid(("body",), f"invalid JSON: {_short(exc)}", "json_invalid") from None
    _check(value, ("body",), 0)
    if not isinstance(value, dict):
        raise invalid(("body",), "body must be a JSON object", "dict_type")
    return value


def _number(text: str) -> int | float:
    """JSON has one number type: ``2.0`` *is* the integer 2 (JSON Schema agrees), so an
    integral value becomes an int and fits an ``int`` field; overflow to infinity is refused
    (it cannot be written back as JSON)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    if value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


_DECODER = json.JSONDecoder(parse_float=_number, parse_constant=_no_constant)


def _short(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split("\n", 1)[0][:200]


def _check(value: Any, loc: tuple[str | int, ...], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise invalid(loc, f"nested deeper than {MAX_DEPTH}", "json_too_deep")
    if isinstance(value, str):
        _check_text(value, loc)
        return
    # A child's path is built only when there is something to look at in it: not for
    # each number of a big list, nor for plain text (one pass over a big body is enough).
    deep = depth + 1 > MAX_DEPTH
    if isinstance(value, dict):
        for key, item in value.items():
            if not _plain(key):
                _check_text(key, loc)
            if (
                deep
                or isinstance(item, dict | list)
                or (isinstance(item, str) and not _plain(item))
            ):
                _check(item, (*loc, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (
                deep
                or isinstance(item, dict | list)
                or (isinstance(item, str) and not _plain(item))
            ):
                _check(item, (*loc, index), depth + 1)


def _plain(text: str) -> bool:
    """ASCII without NUL: nothing :func:`_check_text` could refuse (the quick common case)."""
    return text.isascii() and "\x00" not in text


def _check_text(text: str, loc: tuple[str | int, ...]) -> None:
    if "\x00" in text:
        raise invalid(loc, "NUL characters are not allowed", "string_nul")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(loc, "lone surrogate in string", "string_unicode") from None


def decode(body: Mapping[str, Any], model: type[M], at: tuple[str | int, ...] = ("body",)) -> M:
    """``body`` as the request model ``model``, or a 422 at ``["body", <key>]``: unknown keys
    first (``extra_forbidden``, in key order), then the model's fields in their order
    (``missing``, ``string_type``, ...). One problem is reported, the first, as the API
    always has; the values the core checks come through untouched (see ``_wire``). ``at``:
    where the object is in the request (a batch's item: ``("body", "items", i)``)."""
    try:
        return converter.structure(dict(body), model)
    except (cattrs.BaseValidationError, WrongType, KeyError) as exc:
        details = sorted(_problems(exc, at), key=lambda d: d.type != "extra_forbidden")
        if not details:  # pragma: no cover - cattrs always says which field
            raise invalid(at, str(exc), "value_error") from None
        raise ValidationError(details[:1]) from None


def _problems(
    exc: BaseException, at: tuple[str | int, ...], key: str | None = None
) -> Iterator[ErrorDetail]:
    loc = at if key is None else (*at, key)
    if isinstance(exc, ForbiddenExtraKeysError):
        for extra in sorted(exc.extra_fields):
            yield ErrorDetail((*at, extra), "extra field not permitted", "extra_forbidden")
    elif isinstance(exc, cattrs.ClassValidationError):
        by_field, other = exc.group_exceptions()
        for sub, note in by_field:
            yield from _problems(sub, at, camel(note.name))
        for sub in other:
            yield from _problems(sub, at, key)
    elif isinstance(exc, KeyError):
        yield ErrorDetail(loc, "field required", "missing")
    elif isinstance(exc, WrongType):
        yield ErrorDetail(loc, exc.msg, exc.type)
    else:
        yield ErrorDetail(loc, str(exc) or type(exc).__name__, "value_error")


def path_uuid(request: Request, name: str) -> UUID:
    """A path parameter that must be a UUID (a run id): 422 at ``["path", name]``."""
    value = request.path_params[name]
    try:
        return UUID(value)
    except ValueError:
        raise invalid(("path", name), f"not a valid UUID: {value!r}", "uuid_parsing") from None


def query_text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None:
        _check_text(value, ("query", name))
    return value


def query_int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not _INTEGER.fullmatch(text.strip()):
        raise invalid(("query", name), "Input should be a valid integer", "int_parsing")
    return int(text.strip())


def bounded(value: int, name: str, low: int, high: int) -> int:
    """A query integer within ``low``..``high``: 422 at ``["query", name]`` otherwise."""
    if value < low:
        raise invalid(("query", name), f"must be >= {low}", "greater_than_equal")
    if value > high:
        raise invalid(("query", name), f"must be <= {high}", "less_than_equal")
    return value


def query_bool(request: Request, name: str, default: bool) -> bool:
    text = request.query_params.get(name)
    if text is None:
        return default
    if text not in _BOOLEANS:
        raise invalid(("query", name), "Input should be true, false, 1 or 0", "bool_parsing")
    return _BOOLEANS[text]
