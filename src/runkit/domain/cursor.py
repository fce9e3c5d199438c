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

#: Digits of the entry number a cursor may carry (ids are 64-bit on PostgreSQL).
_MAX_DIGITS = 18


@attrs.frozen
class Cursor:
    """The position after log entry ``seq`` of run ``run_id`` (``seq`` 0: the start)."""

    run_id: UUID
    seq: int = 0

    #: The regular expression a cursor's text matches (for OpenAPI and clients).
    PATTERN: ClassVar[str] = f"^[0-9a-f]{{8}}-[0-9]{{1,{_MAX_DIGITS}}}$"

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
        raise ValidationError.at(
            loc, f"malformed cursor {value!r}; expected one like {example!r}", "cursor"
        )


_SHAPE = re.compile(Cursor.PATTERN)
