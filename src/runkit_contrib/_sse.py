"""The live log stream (Server-Sent Events) of one run.

Streams of one run share a :class:`RunTail`: new entries are read once and encoded once for
all of them, woken by the run's in-process signal *or* a short poll (entries written by
other processes have no local signal). Each stream back-fills its client's history from the
store in keyset batches at that client's pace, so a slow reader only slows itself: the
socket's flow control pauses its generator, never a worker or another client. A client that
does not take a frame within ``send_timeout`` is dropped.

Frames: ``retry: 3000`` first; ``id: <cursor>`` + ``event: log`` + the wire JSON of the
entry; ``: ping`` comments while idle; and once the run is terminal and every entry up to
its terminal transition was sent, ``event: end`` with ``{"status", "displayStatus"}`` (no
``id``, so ``Last-Event-ID`` keeps naming the last entry). Reconnecting after the end
answers 204, which tells ``EventSource`` to stop.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import anyio
import attrs
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from runkit import Cursor, LogEntry, Runkit, RunNotFound, Status

from ._errors import logger
from ._wire import log_to_wire, stream_end_to_wire


@attrs.frozen
class StreamSettings:
    """Timings of log streams; tests shrink them."""

    ping_interval: float = 15.0
    #: Longest wait for a wake-up before re-reading the store (cross-process entries).
    poll_interval: float = 0.5
    batch: int = 500
    #: Ready frames a run's shared tail keeps for its streams (bounds memory per run).
    window: int = 2000
    retry_ms: int = 3000
    send_timeout: float = 30.0


def _dumps(value: Any) -> str:
    # ASCII JSON on one line: an SSE data line must not contain CR or LF.
    return json.dumps(value, separators=(",", ":"))


def log_frame(entry: LogEntry) -> str:
    return f"id: {entry.cursor}\nevent: log\ndata: {_dumps(log_to_wire(entry))}\n\n"


async def read_entries(runkit: Runkit, run_id: UUID, after: int, limit: int) -> list[LogEntry]:
    """Up to ``limit`` entries after entry ``after``, through the one log API
    (:meth:`runkit.Runkit.logs`, pages of at most 500). RunNotFound once the run is gone."""
    page = await runkit.logs(run_id, after=Cursor(run_id, after), limit=min(limit, 500))
    return list(page.entries)


def end_frame(status: Status, display_status: str) -> str:
    return f"event: end\ndata: {_dumps(stream_end_to_wire(status, display_status))}\n\n"


class RunTail:
    """The live end of one run's log, shared by every stream of that run in this process.

    New entries are read from the store once, encoded once, and kept in a bounded window
    ``(base, cursor]`` of ready frames that all streams serve from. Whichever stream wakes
    first reads, under a lock; the others find the read already done (it started after
    they woke) and take the frames. History before ``base`` (a client's back-fill, or a slow
    client the window has moved past) each stream reads from the store at its own pace,
    so a slow reader delays nobody and the window's memory stays bounded.
    """

    def __init__(self, runkit: Runkit, run_id: UUID, cursor: int, settings: StreamSettings):
        self.runkit = runkit
        self.run_id = run_id
        self.settings = settings
        self.base = self.cursor = cursor
        self.frames: deque[str] = deque()
        self.ended: str | None = None  # the end frame, once every entry up to it is read
        self.gone = False  # the run was deleted
        #: The last read filled a whole batch: more may be waiting, read again at once.
        self.more = False
        self.subscribers = 0
        self._lock = anyio.Lock()
        self._read_started = -math.inf

    async def _read(self) -> list[LogEntry]:
        """The next batch after the cursor; empty (and ``gone`` set) once the run is gone."""
        try:
            return await read_entries(self.runkit, self.run_id, self.cursor, self.settings.batch)
        except RunNotFound:
            self.gone = True
            return []

    def frames_after(self, cursor: int) -> list[str]:
        """Ready frames after ``cursor`` (which is at least ``base``)."""
        start = cursor - self.base
        return list(itertools.islice(self.frames, start, None)) if start < len(self.frames) else []

    async def catch_up(self, not_before: float) -> None:
        """Read what is new, unless a read that began at or after ``not_before`` already
        did (it saw every entry committed before this caller woke)."""
        async with self._lock:
            if self._read_started >= not_before or self.ended is not None or self.gone:
                return
            self._read_started = anyio.current_time()
            entries = await self._read()
            if not entries:
                try:
                    run = await self.runkit.get(self.run_id)
                except RunNotFound:
                    self.gone = True
                    return
                if not run.status.terminal:
                    return
                # The terminal transition's entry commits with the status: a read made
                # after the terminal status was seen holds everything up to it.
                entries = await self._read()
                if not entries:
                    if not self.gone:
                        display = await self.runkit.display_status(run)
                        self.ended = end_frame(run.status, display)
                    return
                self._read_started = -math.inf  # more may follow: let the next waker read
            self.frames.extend(log_frame(e) for e in entries)
            self.cursor = entries[-1].seq
            self.more = len(entries) >= self.settings.batch
            if self.more:
                self._read_started = -math.inf
            overflow = len(self.frames) - self.settings.window
            for _ in range(max(0, overflow)):
                self.frames.popleft()
                self.base += 1


class LogHub:
    """The :class:`RunTail` of every run being streamed by this process."""

    def __init__(self, runkit: Runkit, settings: StreamSettings) -> None:
        self.runkit = runkit
        self.settings = settings
        self._tails: dict[UUID, RunTail] = {}

    async def _join(self, run_id: UUID) -> RunTail:
        tail = self._tails.get(run_id)
        if tail is None:
            run = await self.runkit.get(run_id)
            tail = self._tails.setdefault(
                run_id, RunTail(self.runkit, run_id, run.log_seq, self.settings)
            )
        tail.subscribers += 1
        return tail

    def _leave(self, tail: RunTail) -> None:
        tail.subscribers -= 1
        if tail.subscribers == 0 and self._tails.get(tail.run_id) is tail:
            del self._tails[tail.run_id]

    async def events(self, run_id: UUID, after: int) -> AsyncIterator[str]:
        """One client's stream: ``retry``, back-fill from the store, the shared live tail,
        pings while idle, and the end event."""
        settings = self.settings
        yield f"retry: {settings.retry_ms}\n\n"
        try:
            tail = await self._join(run_id)
        except RunNotFound:
            return
        try:
            signal = self.runkit.wakeups.logs(run_id)
            cursor = after
            last_sent = anyio.current_time()
            while True:
                if cursor < tail.base:  # history the window does not hold
                    limit = min(settings.batch, tail.base - cursor)
                    try:
                        entries = await read_entries(self.runkit, run_id, cursor, limit)
                    except RunNotFound:
                        return  # deleted meanwhile
                    if entries:
                        yield "".join(log_frame(e) for e in entries)
                        cursor = entries[-1].seq
                        last_sent = anyio.current_time()
                        continue
                    cursor = tail.base  # nothing there (deleted history): skip to the window
                frames = tail.frames_after(cursor)
                if frames:
                    yield "".join(frames)
                    cursor += len(frames)
                    last_sent = anyio.current_time()
                    continue
                if tail.ended is not None:
                    yield tail.ended
                    return
                if tail.gone:
                    return  # deleted while streaming: close; a reconnect answers 404
                if tail.more:
                    await tail.catch_up(anyio.current_time())
                    continue
                idle = anyio.current_time() - last_sent
                if idle >= settings.ping_interval:
                    yield ": ping\n\n"
                    last_sent = anyio.current_time()
                    continue
                woke = await signal.wait(min(settings.poll_interval, settings.ping_interval - idle))
                now = anyio.current_time()
                # A wake-up: any read begun since covers it. A poll: accept a read a little
                # older, so K idle streams make one read per poll, not K.
                await tail.catch_up(now if woke else now - settings.poll_interval / 2)
        finally:
            self._leave(tail)


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that also watches for the client leaving while the stream is
    idle (so a gone client frees its task at once, not at the next ping) and drops a client
    that does not take a frame within ``send_timeout``."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], *, send_timeout: float) -> None:
        super().__init__(
            content,
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            },
        )
        self.send_timeout = send_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def timed_send(message: Message) -> None:
            with anyio.fail_after(self.send_timeout):
                await send(message)

        async with anyio.create_task_group() as group:

            async def stream() -> None:
                try:
                    await self.stream_response(timed_send)
                except TimeoutError:
                    logger.info("dropping an SSE client that stopped reading")
                except OSError:
                    pass  # the client went away mid-write
                finally:
                    group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
