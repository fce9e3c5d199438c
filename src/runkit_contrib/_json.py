"""The API's JSON response bodies: written by orjson when it is installed (the ``http``
extra brings it), by the standard library otherwise.

Why: writing a run's JSON object took the standard library about 4.6 µs and orjson 0.3; on
``POST /api/v1/action-runs`` under load that was about 11 of the server's 454 CPU-µs a
request (docs/benchmarks.md).

The bytes are the same compact JSON either way, except where orjson is the lenient one:
NaN and the infinities become ``null`` (the standard library, told not to write them,
raised, and the request ended in a 500). What orjson refuses (a key that is not a string, an
integer past 64 bits) is written by the standard library, as before.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSONResponse

__all__ = ["JSONResponse", "dumps"]

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the http extra installs it
    _orjson = None


def _standard(content: Any) -> bytes:
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


if _orjson is not None:
    _write = _orjson.dumps
    _REFUSED = (_orjson.JSONEncodeError, TypeError)

    def dumps(content: Any) -> bytes:
        """``content`` as compact UTF-8 JSON."""
        try:
            written: bytes = _write(content)
        except _REFUSED:
            return _standard(content)
        return written

else:  # pragma: no cover - the http extra installs orjson
    dumps = _standard


class JSONResponse(_StarletteJSONResponse):
    """Starlette's ``JSONResponse``, its body written by :func:`dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
