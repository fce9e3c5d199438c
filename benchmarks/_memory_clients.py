"""Server-Sent-Events clients of the ``memory`` family, one per stream, all in one process
(raw asyncio sockets, HTTP/1.0 so the stream is close-delimited):
``python -m benchmarks._memory_clients HOST PORT API_KEY SPEC_FILE MARKER TIMEOUT``.

SPEC_FILE has one stream a line: ``PATH AFTER`` (the path of a run's log stream and the
cursor to follow it from). Prints ``READY <n>`` once every stream answered 200 and sent its
``retry:`` frame, then reads each stream until ``event: end`` (or TIMEOUT). A stream the
server closes before its end is reopened with ``Last-Event-ID``, as ``EventSource`` does
(counted in ``reconnects``).

Frames are not JSON-decoded: the client only counts. Per stream it reports ``entries``
(``event: log`` frames), ``marked`` (those whose frame contains MARKER: the benchmark's own
lines), ``gaps`` (ids skipped), ``dups`` (ids received twice or out of order), the last id's
sequence number and whether the end came. Prints ``RESULT {json}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


async def follow(
    host: str,
    port: int,
    key: str,
    path: str,
    after: str,
    marker: bytes,
    ready: asyncio.Event,
    deadline: float,
) -> dict[str, Any]:
    prev = int(after.rsplit("-", 1)[1])
    last_id = after
    out: dict[str, Any] = {"entries": 0, "marked": 0, "gaps": 0, "dups": 0, "reconnects": 0}
    ended = False
    first = True
    failure: str | None = None
    while not ended and time.monotonic() < deadline:
        reader, writer = await asyncio.open_connection(host, port)
        headers = f"Host: {host}\r\nX-API-Key: {key}\r\nAccept: text/event-stream\r\n"
        if not first:
            headers += f"Last-Event-ID: {last_id}\r\n"
            out["reconnects"] += 1
        writer.write(f"GET {path}?after={after} HTTP/1.0\r\n{headers}\r\n".encode())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status == 204:  # the run ended and everything was sent before
                ended = True
                break
            if status != 200:
                failure = f"stream answered {status}"
                break
            buf = b""
            while not ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    data = await asyncio.wait_for(reader.read(1 << 16), remaining)
                except TimeoutError:
                    break
                if not data:
                    break  # closed before the end: reconnect
                frames = (buf + data).split(b"\n\n")
                buf = frames.pop()
                for frame in frames:
                    if frame.startswith(b"id: "):
                        nl = frame.index(b"\n")
                        if not frame.startswith(b"event: log", nl + 1):
                            continue
                        seq = int(frame[4:nl].rsplit(b"-", 1)[1])
                        if seq <= prev:
                            out["dups"] += 1
                            continue
                        out["gaps"] += seq - prev - 1
                        prev = seq
                        last_id = frame[4:nl].decode()
                        out["entries"] += 1
                        if marker in frame:
                            out["marked"] += 1
                    elif frame.startswith(b"event: end"):
                        ended = True
                    elif frame.startswith(b"retry:"):
                        ready.set()
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            failure = repr(err)
        finally:
            ready.set()
            writer.close()
        if failure is not None:
            break
        first = False
    return {**out, "last_seq": prev, "ended": ended, "failure": failure}


async def main_async(argv: list[str], specs: list[list[str]]) -> dict[str, Any]:
    host, port, key, _, marker, timeout = argv
    deadline = time.monotonic() + float(timeout)
    readies = [asyncio.Event() for _ in specs]
    tasks = [
        asyncio.create_task(
            follow(host, int(port), key, path, after, marker.encode(), ready, deadline)
        )
        for (path, after), ready in zip(specs, readies, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    print(f"READY {sum(not t.done() for t in tasks)}", flush=True)
    return {"clients": await asyncio.gather(*tasks)}


def main(argv: list[str]) -> int:
    specs = [line.split() for line in Path(argv[3]).read_text().splitlines() if line.strip()]
    out = asyncio.run(main_async(argv, specs))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
