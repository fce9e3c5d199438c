"""The live log stream (Server-Sent Events) of one run.

Streams of one run share a :class:`RunTail`: new entries are read once and encoded once for
all of them. An idle stream costs nothing but its socket: it sleeps until its tail is woken,
by a wake-up that names its run (an entry appended in this process, or a PostgreSQL
notification from another one), or by the :class:`LogHub`'s check, which reads the log
heads of *every* streamed run in one store read each ``poll_interval`` (and at once when
another process says "some run changed" without saying which, as SQLite's commit watch
does) and wakes only the tails whose head moved. Each stream back-fills its client's
history from the store in keyset batches at that client's pace, so a slow reader only slows
itself: the socket's flow control pauses its generator, never a worker or another client. A
client that does not take a frame within ``send_timeout`` is dropped. Open streams are
capped in total and per principal (:class:`StreamSlots`).

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
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
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
    """Timings and caps of log streams; tests shrink them."""

    ping_interval: float = 15.0
    #: How often the hub checks the log heads of every streamed run (one store read for
    #: all), for entries other processes wrote without a wake-up naming the run. A wake-up
    #: naming no run brings the check forward (checks stay :data:`CHECK_GAP` apart).
    poll_interval: float = 0.5
    batch: int = 500
    #: Ready frames a run's shared tail keeps for its streams (bounds memory per run).
    window: int = 2000
    retry_ms: int = 3000
    send_timeout: float = 30.0
    #: Streams open at once in this process, and per principal (anonymous callers share
    #: one allowance); one more answers 429 with ``Retry-After: busy_retry_after``.
    max_streams: int = 2000
    max_streams_per_principal: int = 100
    busy_retry_after: int = 5


#: The shortest time between two checks of the hub: a busy SQLite database (every commit
#: elsewhere a wake-up naming no run) costs at most 20 checks a second.
CHECK_GAP = 0.05


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

    :meth:`wake` says there may be something to read; streams count the wake-ups they
    have answered, so one that comes while a stream is busy sending is answered next.
    A tail of a run that had ended when it was read starts woken, so its streams end at
    once; others read nothing until woken (entries that came between the run's read and
    the tail joining the hub are found by the hub's next check).
    """

    def __init__(
        self,
        runkit: Runkit,
        run_id: UUID,
        cursor: int,
        settings: StreamSettings,
        *,
        woken: bool = False,
    ) -> None:
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
        self.wakes = 1 if woken else 0
        self.woken_at = anyio.current_time()
        self._woken = anyio.Event()

    def wake(self) -> None:
        """There may be new entries, or a new status: streams waiting in :meth:`wait` (or
        busy and coming back) read, and a read begun from now on answers them all."""
        self.wakes += 1
        self.woken_at = anyio.current_time()
        self._woken.set()
        self._woken = anyio.Event()

    async def wait(self, answered: int, timeout: float) -> None:
        """Until a wake-up beyond the ``answered`` first ones, or ``timeout``."""
        if self.wakes == answered:
            woken = self._woken
            with anyio.move_on_after(timeout):
                await woken.wait()

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


class StreamSlots:
    """The open-stream allowance: at most ``max_streams`` in all and
    ``max_streams_per_principal`` for one key (a principal; None for anonymous callers)."""

    def __init__(self, settings: StreamSettings) -> None:
        self.settings = settings
        self.total = 0
        self.held: Counter[Hashable] = Counter()

    def refusal(self, key: Hashable) -> str | None:
        """Why one more stream for ``key`` is refused now; None if it is not."""
        per_key, total = self.settings.max_streams_per_principal, self.settings.max_streams
        if self.held[key] >= per_key:
            return f"too many open log streams for this caller (at most {per_key})"
        if self.total >= total:
            return f"too many open log streams on this server (at most {total})"
        return None

    def take(self, key: Hashable) -> Callable[[], None]:
        """Take a slot for ``key`` (after :meth:`refusal` said None); the function returned
        gives it back (once, however often it is called)."""
        self.total += 1
        self.held[key] += 1
        taken = True

        def release() -> None:
            nonlocal taken
            if taken:
                taken = False
                self.total -= 1
                self.held[key] -= 1
                if not self.held[key]:
                    del self.held[key]

        return release


class LogHub:
    """The :class:`RunTail` of every run being streamed by this process, and the one check
    that wakes them for entries written elsewhere.

    The check runs in :meth:`serve`, which every stream's response runs beside its stream:
    the first holds the hub's lock and checks; the others wait on the lock (costing
    nothing) and the next takes over, in order, when the checker's stream ends. So while any
    stream is open exactly one task checks, it needs no task group of the app's, and none
    outlives the last stream.
    """

    def __init__(self, runkit: Runkit, settings: StreamSettings) -> None:
        self.runkit = runkit
        self.settings = settings
        self.slots = StreamSlots(settings)
        self._tails: dict[UUID, RunTail] = {}
        # Made on first use: they belong to the running event loop.
        self._checker: anyio.Lock | None = None
        self._nudge: anyio.Event | None = None  # set by a wake-up naming no run
        self._joined: anyio.Event | None = None  # set when the first tail joins

    def _observe(self, run_id: UUID | None) -> None:
        """The runkit's log wake-ups: wake the named run's tail; for "any run", the check."""
        if run_id is None:
            if self._nudge is not None:
                self._nudge.set()
        elif (tail := self._tails.get(run_id)) is not None:
            tail.wake()

    async def _join(self, run_id: UUID) -> RunTail:
        tail = self._tails.get(run_id)
        if tail is None:
            run = await self.runkit.get(run_id)
            tail = self._tails.get(run_id)
            if tail is None:
                if not self._tails:
                    self.runkit.wakeups.observe_logs(self._observe)
                    if self._joined is not None:
                        self._joined.set()
                tail = self._tails[run_id] = RunTail(
                    self.runkit, run_id, run.log_seq, self.settings, woken=run.status.terminal
                )
        tail.subscribers += 1
        return tail

    def _leave(self, tail: RunTail) -> None:
        tail.subscribers -= 1
        if tail.subscribers == 0 and self._tails.get(tail.run_id) is tail:
            del self._tails[tail.run_id]
            if not self._tails:
                self.runkit.wakeups.unobserve_logs(self._observe)

    async def check(self) -> None:
        """Read the log heads of every streamed run at once; wake the tails with entries
        they have not read, a terminal run (to end), or a run that is gone."""
        tails = [t for t in self._tails.values() if t.ended is None and not t.gone]
        if not tails:
            return
        heads = await self.runkit.store.log_heads([t.run_id for t in tails])
        for tail in tails:
            head = heads.get(tail.run_id)
            if head is None or head.log_seq > tail.cursor or head.status.terminal:
                tail.wake()

    async def serve(self) -> None:
        """Run the hub's checks for as long as the caller lasts, once no earlier caller
        does; until cancelled (a stream's response runs it beside its stream)."""
        if self._checker is None:
            self._checker = anyio.Lock()
        async with self._checker:
            interval = self.settings.poll_interval
            last = -math.inf
            self._nudge = anyio.Event()
            while True:
                if not self._tails:
                    self._joined = anyio.Event()
                    await self._joined.wait()
                    continue
                with anyio.CancelScope(deadline=last + interval):
                    await self._nudge.wait()
                self._nudge = anyio.Event()  # a nudge from now on asks for the next check
                await anyio.sleep_until(last + min(CHECK_GAP, interval))
                last = anyio.current_time()
                try:
                    await self.check()
                except Exception:  # storage down: the next check retries
                    logger.debug("log stream check failed", exc_info=True)

    async def events(self, run_id: UUID, after: int) -> AsyncIterator[str]:
        """One client's stream: ``retry``, back-fill from the store, the shared live tail,
        pings while idle, and the end event. Entries other processes write reach it only
        while :meth:`serve` runs (as :class:`EventStreamResponse` does, given it)."""
        settings = self.settings
        yield f"retry: {settings.retry_ms}\n\n"
        try:
            tail = await self._join(run_id)
        except RunNotFound:
            return
        try:
            cursor = after
            answered = 0  # wake-ups of the tail this stream has read after
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
                if answered != tail.wakes:
                    # Any read begun since the last wake-up covers it: K streams of a run
                    # woken together make one read, not K.
                    answered = tail.wakes
                    await tail.catch_up(tail.woken_at)
                    continue
                idle = anyio.current_time() - last_sent
                if idle >= settings.ping_interval:
                    yield ": ping\n\n"
                    last_sent = anyio.current_time()
                    continue
                await tail.wait(answered, settings.ping_interval - idle)
        finally:
            self._leave(tail)


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that also watches for the client leaving while the stream is
    idle (so a gone client frees its task at once, not at the next ping) and drops a client
    that does not take a frame within ``send_timeout``. ``companion`` runs beside the stream
    and is cancelled with it (:meth:`LogHub.serve`); ``on_close`` is called when the
    response ends, however it ends (a stream slot given back)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterator[str],
        *,
        send_timeout: float,
        companion: Callable[[], Coroutine[Any, Any, None]] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            content,
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            },
        )
        self.send_timeout = send_timeout
        self.companion = companion
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._respond(receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _respond(self, receive: Receive, send: Send) -> None:
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
            if self.companion is not None:
                group.start_soon(self.companion)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
