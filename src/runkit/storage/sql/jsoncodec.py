"""The JSON text of the SQL store's JSON columns (a run's definition, progress and result,
its log entries' data): orjson when it is installed (the ``postgres`` extra brings it),
the standard library otherwise. Reading stays with the standard library (orjson reads an
integer past 64 bits as a float, which would change the value), except for the empty
object and array most runs hold (a definition, progress, approvals), which are made
without parsing: a claim reads several JSON columns a run.

Why: every statement that writes a run or an entry dumps its JSON values; the standard
library's encoder took about 7 % of a create's Python (profiled); with orjson a create
took 235 CPU-µs instead of 244.

The same values come back either way. orjson writes only what it writes as the standard
library would: a value it would write differently (a key that is not a string, an integer
past 64 bits, a datetime, a dataclass, a subclass of ``str``, ``int``, ``dict`` or
``list``) makes it raise, and the standard library takes the value, or refuses it, as
before. Where the two still differ, orjson is the lenient one: a UUID is written as its
string and an enum as its value (the standard library refuses both), NaN and the
infinities as ``null`` (JSON has no form for them; PostgreSQL refused the standard
library's ``NaN``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps", "loads"]

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the postgres extra installs it
    _orjson = None


if _orjson is not None:
    _encode = _orjson.dumps
    _REFUSED = (_orjson.JSONEncodeError, TypeError)
    #: What these options name is handed to ``default``, which refuses it: the standard
    #: library's turn.
    _STRICT = (
        _orjson.OPT_PASSTHROUGH_DATETIME
        | _orjson.OPT_PASSTHROUGH_DATACLASS
        | _orjson.OPT_PASSTHROUGH_SUBCLASS
    )

    # A module function, not a closure: psycopg warns that a closure handed to it may leak.
    def dumps(value: Any) -> str:
        try:
            return str(_encode(value, option=_STRICT), "utf-8")
        except _REFUSED:
            return json.dumps(value)

else:  # pragma: no cover - the postgres extra installs orjson

    def dumps(value: Any) -> str:
        return json.dumps(value)


#: JSON text that needs no parser, and what makes a fresh value of it (never shared: the
#: caller may change it).
_EMPTY: dict[str | bytes, Any] = {"{}": dict, b"{}": dict, "[]": list, b"[]": list}


def loads(text: str | bytes) -> Any:
    """``json.loads``, with the empty object and array made without parsing."""
    make = _EMPTY.get(text)
    if make is not None:
        return make()
    return json.loads(text)
