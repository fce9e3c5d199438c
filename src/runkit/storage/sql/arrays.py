"""PostgreSQL array literals for the driver path's statements over arrays (``unnest``).

psycopg adapts a Python list element by element in Python (its ``ListDumper``): for a batch
of 500 runs, three fifths of ``create_many``'s time. The same array as one literal string,
``{"a","b",NULL}``, built here with string operations, is one parameter the server parses
(``%(x)s::uuid[]``). Every element is quoted and escaped (backslash before ``"`` and ``\\``),
so any text survives, and ``NULL`` unquoted is SQL NULL. A value of a type not handled here
makes :func:`literal` answer None, and the caller passes the list to psycopg as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from . import jsoncodec


def _json_wrappers() -> tuple[type, ...]:
    try:  # the wrappers SQLAlchemy's psycopg dialect puts around JSON values
        from psycopg.types.json import Json, Jsonb
    except ImportError:  # pragma: no cover - the driver path needs psycopg anyway
        return ()
    return (Json, Jsonb)


_JSON = _json_wrappers()


#: Types whose equal values are written alike: a column holding one of them throughout is
#: written once and repeated (a batch's NULLs, its kind, its time). Not ``bool`` (``1 ==
#: True``); a column of ``int`` holding a bool equal to the first value reads the same.
_REPEATABLE = frozenset({type(None), str, int, UUID, datetime})


def literal(values: Sequence[Any]) -> str | None:
    """``values`` as one array literal, or None if one of them is of a type not handled."""
    n = len(values)
    if n > 1 and _repeated(values):
        one = literal(values[:1])
        return None if one is None else "{" + ",".join([one[1:-1]] * n) + "}"
    parts: list[str] = []
    add = parts.append
    for value in values:
        kind = type(value)
        if value is None:
            add("NULL")
            continue
        if kind is str:
            text = value
        elif kind is bool:
            text = "t" if value else "f"
        elif kind is int:
            text = str(value)
        elif kind is UUID:
            add(value.hex)  # 32 hex digits (PostgreSQL reads them as a UUID): no quotes
            continue
        elif kind is datetime:
            text = value.isoformat()
        elif kind in _JSON:
            # As psycopg writes it on the store's connections (``jsoncodec``), unless the
            # wrapper names its own function.
            text = (value.dumps or jsoncodec.dumps)(value.obj)
        else:
            return None
        add('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


def _repeated(values: Sequence[Any]) -> bool:
    """Whether ``values`` are one value throughout: equal ones of a type written alike, or
    one object (a JSON value a statement processed once for the whole column)."""
    first = values[0]
    if type(first) in _REPEATABLE:
        return values.count(first) == len(values)
    return all(v is first for v in values)
