"""Log cursors: one type owns their format, their parsing and their pattern.

A cursor names a position in one run's log: ``"<first 8 hex digits of the run id>-<n>"``
(entries after the n-th). Naming the run means a cursor from another run is refused rather
than silently paging the wrong log. The HTTP layer's ``after`` and ``Last-Event-ID``, the
stream's ``id:`` and :attr:`~runkit.LogEntry.cursor` are all this.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from uuid import UUID

import attrs

from .errors import ValidationError

#: The largest entry number a cursor may carry: log entry numbers are 32-bit integers in the
#: SQL stores, so a larger one could name no entry and only fail the query.
MAX_SEQ = 2**31 - 1


def _up_to(limit: int) -> str:
    """A regular expression of the decimal numbers 0..``limit``, ASCII digits, written
    without leading zeros (as :class:`Cursor` writes them)."""
    digits = str(limit)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else ""
    same = []
    for i, d in enumerate(digits):
        head, left = digits[:i], len(digits) - i - 1
        low = "1" if i == 0 else "0"
        top = str(int(d) - 1)
        if top >= low:
            digit = low if top == low else f"[{low}-{top}]"
            tail = "" if not left else "[0-9]" if left == 1 else f"[0-9]{{{left}}}"
            same.append(f"{head}{digit}{tail}")
    same.append(digits)
    return "(?:" + "|".join(["0", *([shorter] if shorter else []), *same]) + ")"


@attrs.frozen
class Cursor:
    """The position after log entry ``seq`` of run ``run_id`` (``seq`` 0: the start)."""

    run_id: UUID
    seq: int = 0

    #: The regular expression a cursor's text matches (for OpenAPI and clients).
    #: Only ASCII digits, no leading zeros, at most :data:`MAX_SEQ`.
    PATTERN: ClassVar[str] = f"^[0-9a-f]{{8}}-{_up_to(MAX_SEQ)}$"

    def __str__(self) -> str:
        return f"{self.run_id.hex[:8]}-{self.seq}"

    @classmethod
    def parse(cls, value: Any, run_id: UUID, loc: tuple[str, ...] = ("after",)) -> Cursor:
        """``value`` (text, a Cursor, or None/"" for the start) as a cursor of ``run_id``;
        a ValidationError at ``loc`` if it is malformed or belongs to another run."""
        if value is None or value == "":
            return cls(run_id)
        if isinstance(value, Cursor):
            if value.run_id != run_id:
                raise ValidationError.at(loc, "cursor belongs to another run", "cursor_mismatch")
            return value
        if isinstance(value, str) and _SHAPE.fullmatch(value):
            prefix, _, number = value.rpartition("-")
            if prefix != run_id.hex[:8]:
                raise ValidationError.at(loc, "cursor belongs to another run", "cursor_mismatch")
            return cls(run_id, int(number))
        example = str(cls(run_id, 42))
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise ValidationError.at(
            loc,
            f"malformed cursor {shown}; expected one like {example!r} (numbers up to {MAX_SEQ})",
            "cursor",
        )


_SHAPE = re.compile(Cursor.PATTERN)
