"""A Server-Sent Events decoder: bytes in, events out, as the HTML standard's
"interpreting an event stream" says (UTF-8, lines ending in CRLF, LF or CR, ``:``
comments, ``event``/``data``/``id``/``retry`` fields, one event per blank line).

It is fed whatever the socket gives, split anywhere (inside a line, a UTF-8 sequence or a
CRLF pair). An event is only complete at its blank line: one cut off by a dropped
connection is never dispatched, so a reader that resumes after the last event it got
neither loses nor repeats one. Small and pure, so no library is needed for it.
"""

from __future__ import annotations

import codecs

import attrs


@attrs.frozen
class Event:
    #: The ``event`` field; ``message`` when none was given.
    event: str
    data: str
    #: The last event ID when it was dispatched (``id`` fields persist across events).
    id: str | None


class EventDecoder:
    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        #: The last ``retry`` field (milliseconds), if any.
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """The events ``chunk`` completes."""
        return self._lines(self._text.decode(chunk), final=False)

    def close(self) -> list[Event]:
        """End of the stream: a final line without its end is read, but an event without
        its blank line is dropped (the standard's rule for a stream cut short)."""
        return self._lines(self._text.decode(b"", final=True), final=True)

    def _lines(self, text: str, *, final: bool) -> list[Event]:
        buffer = self._buffer + text
        if not self._started and buffer:
            self._started = True
            buffer = buffer.removeprefix("\ufeff")
        events: list[Event] = []
        start = 0
        while True:
            cr, lf = buffer.find("\r", start), buffer.find("\n", start)
            if cr < 0 and lf < 0:
                break
            end = lf if cr < 0 or 0 <= lf < cr else cr
            if buffer[end] == "\r" and end + 1 == len(buffer) and not final:
                break  # a CR at the end may be half of a CRLF: wait for the next byte
            step = 2 if buffer.startswith("\r\n", end) else 1
            event = self._line(buffer[start:end])
            if event is not None:
                events.append(event)
            start = end + step
        rest = buffer[start:]
        if final:
            if rest:
                self._line(rest)  # a field with no line end, never dispatched
            self._buffer = ""
            self._event, self._data = "", []
        else:
            self._buffer = rest
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (the server's pings)
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self._last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        if not self._data:
            self._event = ""
            return None
        event = Event(self._event or "message", "\n".join(self._data), self._last_id)
        self._event, self._data = "", []
        return event
