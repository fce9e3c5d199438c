"""Hold K idle Server-Sent-Events streams open from one process (raw asyncio sockets,
HTTP/1.0): ``python -m benchmarks._stream_holder HOST PORT API_KEY PATHS_FILE``, one stream
a line of PATHS_FILE.

Prints ``READY <open>`` once every stream answered 200 and sent its ``retry:`` frame (or
failed), then reads and discards whatever the server sends (back-fill, pings) until stdin
closes, and prints ``RESULT {json}``: how many streams opened, failed, and closed early.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any


async def hold(host: str, port: int, key: str, path: str, ready: asyncio.Event) -> str:
    """How the stream ended: ``closed`` by the server, or ``failed`` (to open, or to read);
    a stream still open when the holder stops never returns (it is cancelled)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        ready.set()
        return "failed"
    headers = f"Host: {host}\r\nX-API-Key: {key}\r\nAccept: text/event-stream\r\n"
    writer.write(f"GET {path} HTTP/1.0\r\n{headers}\r\n".encode())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if int(head.split(b" ", 2)[1]) != 200:
            return "failed"
        buf = b""
        while b"retry:" not in buf:
            data = await reader.read(1 << 16)
            if not data:
                return "failed"
            buf += data
        ready.set()
        while await reader.read(1 << 16):
            pass
        return "closed"
    except (OSError, asyncio.IncompleteReadError, ValueError):
        return "failed"
    finally:
        ready.set()
        writer.close()


async def main_async(host: str, port: int, key: str, paths: list[str]) -> dict[str, Any]:
    readies = [asyncio.Event() for _ in paths]
    pairs = zip(paths, readies, strict=True)
    tasks = [asyncio.create_task(hold(host, port, key, p, r)) for p, r in pairs]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    opened = sum(not t.done() for t in tasks)
    print(f"READY {opened}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    outcomes = [t.result() for t in tasks if t.done()]
    for task in tasks:
        task.cancel()
    return {
        "streams": len(paths),
        "opened": opened,
        "failed": outcomes.count("failed"),
        "closed_early": outcomes.count("closed"),
    }


def main(argv: list[str]) -> int:
    host, port, key, paths_file = argv
    paths = Path(paths_file).read_text().split()
    out = asyncio.run(main_async(host, int(port), key, paths))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
