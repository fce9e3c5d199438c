"""K Server-Sent-Events clients in one process (raw asyncio sockets, HTTP/1.0 so the stream
is close-delimited): ``python -m benchmarks._sse_clients HOST PORT PATH AFTER K API_KEY
RECONNECT TIMEOUT``.

Prints ``READY`` once every client has its stream open (the ``retry:`` frame arrived),
then waits for ``GO <seconds>`` on stdin. With RECONNECT=1 each client, at a random moment
in the middle 60% of that window, drops its connection and reconnects with
``Last-Event-ID`` set to the last id it received, as ``EventSource`` does. Each client runs
until ``event: end`` (or TIMEOUT) and checks that the log ids it received are consecutive
(``gaps``: ids skipped, ``dups``: ids received twice or out of order).

Frames are not JSON-decoded (the client must not be the bottleneck): a frame is a benchmark
line when its data carries ``"t_ns"``, and the receive time (``time.time_ns()`` right after
the read) is recorded against the id's sequence number. Prints ``RESULT {json}`` with, per
client, ``[[seq, recv_ns], ...]`` and its counters.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any


async def one_client(
    host: str,
    port: int,
    path: str,
    after: str,
    key: str,
    ready: asyncio.Event,
    go: asyncio.Future[float],
    reconnect: bool,
    deadline: float,
) -> dict[str, Any]:
    prev = int(after.rsplit("-", 1)[1])
    last_id = after
    samples: list[list[int]] = []
    gaps = dups = reconnects = unexpected = 0
    ended = False
    reconnect_at: float | None = None
    first = True
    while not ended and time.monotonic() < deadline:
        reader, writer = await asyncio.open_connection(host, port)
        headers = f"X-API-Key: {key}\r\nAccept: text/event-stream\r\n"
        if not first:
            headers += f"Last-Event-ID: {last_id}\r\n"
        writer.write(f"GET {path}?after={after} HTTP/1.0\r\nHost: {host}\r\n{headers}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status == 204:
            ended = True
            writer.close()
            break
        if status != 200:
            raise RuntimeError(f"stream answered {status}: {head[:200]!r}")
        buf = b""
        dropped = False
        while True:
            if first and go.done() and reconnect and reconnect_at is None:
                reconnect_at = time.monotonic() + go.result() * random.uniform(0.2, 0.8)
            timeout = deadline - time.monotonic()
            if reconnect_at is not None:
                timeout = min(timeout, reconnect_at - time.monotonic())
            try:
                data = await asyncio.wait_for(reader.read(1 << 16), max(timeout, 0.001))
            except TimeoutError:
                if reconnect_at is not None and time.monotonic() >= reconnect_at:
                    dropped = True
                    break
                if time.monotonic() >= deadline:
                    break
                continue
            now = time.time_ns()
            if not data:
                unexpected += 1
                break
            buf += data
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                event = ident = payload = None
                for line in frame.split(b"\n"):
                    if line.startswith(b"id: "):
                        ident = line[4:]
                    elif line.startswith(b"event: "):
                        event = line[7:]
                    elif line.startswith(b"data: "):
                        payload = line[6:]
                    elif line.startswith(b"retry:"):
                        ready.set()
                if event == b"end":
                    ended = True
                elif event == b"log" and ident is not None:
                    seq = int(ident.rsplit(b"-", 1)[1])
                    if seq <= prev:
                        dups += 1
                    else:
                        gaps += seq - prev - 1
                        prev = seq
                        last_id = ident.decode()
                    if payload is not None and b'"t_ns"' in payload:
                        samples.append([seq, now])
            if ended:
                break
        writer.close()
        if dropped:
            reconnects += 1
            first = False
            reconnect_at = None
            reconnect = False  # once
        elif not ended and time.monotonic() < deadline:
            first = False  # the server closed on us: resume like EventSource would
    return {
        "samples": samples,
        "gaps": gaps,
        "dups": dups,
        "reconnects": reconnects,
        "unexpected_closes": unexpected,
        "ended": ended,
    }


async def main_async(argv: list[str]) -> dict[str, Any]:
    host, port, path, after, k, key, reconnect, timeout = argv
    loop = asyncio.get_running_loop()
    go: asyncio.Future[float] = loop.create_future()
    deadline = time.monotonic() + float(timeout)
    readies = [asyncio.Event() for _ in range(int(k))]
    tasks = [
        asyncio.create_task(
            one_client(host, int(port), path, after, key, r, go, reconnect == "1", deadline)
        )
        for r in readies
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    print("READY", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    go.set_result(float(line.split()[1]))
    clients = await asyncio.gather(*tasks)
    return {"clients": clients}


def main(argv: list[str]) -> int:
    try:
        import uvloop
    except ImportError:
        out = asyncio.run(main_async(argv))
    else:
        out = uvloop.run(main_async(argv))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
