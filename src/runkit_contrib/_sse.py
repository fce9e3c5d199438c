"""The live log stream (Server-Sent Events) of one run.

Each stream reads the store at its own client's pace: back-fill in keyset batches, then tail
by waiting on the run's in-process wake-up signal *or* a short poll (entries written by
other processes have no local signal). Nothing is buffered for a client anywhere else, so a
slow reader only slows itself: the socket's flow control pauses this generator, never a
worker. A client that does not take a frame within ``send_timeout`` is dropped.

Frames: ``retry: 3000`` first; ``id: <cursor>`` + ``event: log`` + the wire JSON of the
entry; ``: ping`` comments while idle; and once the run is terminal and every entry up to
its terminal transition was sent, ``event: end`` with ``{"status", "displayStatus"}`` (no
``id``, so ``Last-Event-ID`` keeps naming the last entry). Reconnecting after the end
answers 204, which tells ``EventSource`` to stop.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import anyio
import attrs
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from runkit import LogEntry, Run, Runkit, RunNotFound
from runkit._wire import log_to_wire

from ._errors import logger


@attrs.frozen
class StreamSettings:
    """Timings of log streams; tests shrink them."""

    ping_interval: float = 15.0
    #: Longest wait for a wake-up before re-reading the store (cross-process entries).
    poll_interval: float = 0.5
    batch: int = 500
    retry_ms: int = 3000
    send_timeout: float = 30.0


def _dumps(value: Any) -> str:
    # ASCII JSON on one line: an SSE data line must not contain CR or LF.
    return json.dumps(value, separators=(",", ":"))


def log_frame(entry: LogEntry) -> str:
    return f"id: {entry.cursor}\nevent: log\ndata: {_dumps(log_to_wire(entry))}\n\n"


def end_frame(status: str, display_status: str) -> str:
    return f"event: end\ndata: {_dumps({'status': status, 'displayStatus': display_status})}\n\n"


async def read_entries(runkit: Runkit, run_id: UUID, after: int, limit: int) -> Sequence[LogEntry]:
    # Runkit.read_log_entries is annotated ``list[LogEntry]`` inside a class whose own
    # ``list`` method shadows the builtin, which mypy cannot read; restate the type here.
    entries: Sequence[LogEntry] = await runkit.read_log_entries(run_id, after, limit)  # type: ignore[assignment,unused-ignore]
    return entries


async def log_events(
    runkit: Runkit, run_id: UUID, after: int, settings: StreamSettings
) -> AsyncIterator[str]:
    yield f"retry: {settings.retry_ms}\n\n"
    signal = runkit.wakeups.logs(run_id)
    cursor = after
    terminal: Run | None = None
    last_sent = anyio.current_time()
    while True:
        entries = await read_entries(runkit, run_id, cursor, settings.batch)
        if entries:
            yield "".join(log_frame(e) for e in entries)
            cursor = entries[-1].seq
            last_sent = anyio.current_time()
            continue
        if terminal is not None:
            # The terminal transition's entry commits with the status, so the read above,
            # made after the terminal status was seen, has sent everything up to it.
            yield end_frame(terminal.status.value, await runkit.display_status(terminal))
            return
        try:
            run = await runkit.get(run_id)
        except RunNotFound:
            return  # deleted while streaming: close; a reconnect answers 404
        if run.status.terminal:
            terminal = run
            continue  # one more read before the end event
        idle = anyio.current_time() - last_sent
        if idle >= settings.ping_interval:
            yield ": ping\n\n"
            last_sent = anyio.current_time()
            continue
        await signal.wait(min(settings.poll_interval, settings.ping_interval - idle))


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
