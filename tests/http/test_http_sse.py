"""The log stream over a real socket (uvicorn in the test's event loop): framing, pings,
end, 204 after end, and 10,000 entries read across random reconnects exactly once."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from api_support import API_KEY, AUTH, BASE, claim

from runkit import NewLogEntry, Runkit
from runkit_contrib import ApiKeys, StreamSettings, asgi_app

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serve(runkit: Runkit, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = asgi_app(runkit, auth=ApiKeys({"t": API_KEY}), stream=StreamSettings(**settings))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
            await anyio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            yield c
        server.should_exit = True


async def events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Parse SSE frames (comments come through as ``{"comment": ...}``)."""
    frame: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            frame[name] = value.removeprefix(" ")


async def test_stream_frames_end_and_204(runkit: Runkit) -> None:
    run = (await runkit.create("free", {})).run
    lease = await claim(runkit, str(run.id))
    await runkit.ops.append_logs(lease, [NewLogEntry("hello", data={"n": 1})])
    await runkit.ops.complete(lease, {"ok": True})
    url = f"{BASE}/{run.id}/logs/stream"
    async with serve(runkit) as c:
        async with c.stream("GET", url, headers=AUTH) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-cache"
            assert r.headers["x-accel-buffering"] == "no"
            frames = [f async for f in events(r)]
        assert frames[0] == {"retry": "3000"}
        logs = [f for f in frames if f.get("event") == "log"]
        stored = (await runkit.logs(run.id, limit=100)).entries
        assert [f["id"] for f in logs] == [e.cursor for e in stored]
        hello = json.loads(logs[3]["data"])
        assert hello["message"] == "hello" and hello["id"] == logs[3]["id"]
        assert frames[-1]["event"] == "end" and "id" not in frames[-1]
        assert json.loads(frames[-1]["data"])["status"] == "succeeded"
        # Resuming mid-way sends only what follows; after the end: 204.
        r = await c.get(url, headers={**AUTH, "Last-Event-ID": logs[1]["id"]})
        resumed = [
            json.loads(line[6:])["id"]
            for line in r.text.splitlines()
            if line.startswith('data: {"id"')
        ]
        assert resumed == [f["id"] for f in logs[2:]]
        r = await c.get(url, headers={**AUTH, "Last-Event-ID": logs[-1]["id"]})
        assert r.status_code == 204
        # The header wins over ``after``; a malformed one is a 422 at its loc.
        r = await c.get(
            url, params={"after": logs[0]["id"]}, headers={**AUTH, "Last-Event-ID": logs[-1]["id"]}
        )
        assert r.status_code == 204
        r = await c.get(url, headers={**AUTH, "Last-Event-ID": "garbage"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["header", "last-event-id"]


async def test_pings_and_cross_process_polling(runkit: Runkit) -> None:
    run = (await runkit.create("free", {})).run
    lease = await claim(runkit, str(run.id))
    async with serve(runkit, ping_interval=0.2, poll_interval=0.05) as c:
        url = f"{BASE}/{run.id}/logs/stream"
        async with c.stream("GET", url, headers=AUTH) as r:
            seen: list[dict[str, str]] = []
            async for frame in events(r):
                seen.append(frame)
                if frame.get("comment") == "ping" and not any(
                    "late" in f.get("data", "") for f in seen
                ):
                    # Written straight to the store, as another process would: no wake-up.
                    await runkit.store.append_logs(run.id, [NewLogEntry("late")], fence=lease)
                if "late" in frame.get("data", ""):
                    await runkit.ops.complete(lease, {})
                if frame.get("event") == "end":
                    break
        assert any(f.get("comment") == "ping" for f in seen)
        assert seen[-1]["event"] == "end"


async def test_ten_thousand_entries_with_random_reconnects(runkit: Runkit) -> None:
    total_lines = 10_000
    run = (await runkit.create("free", {})).run
    lease = await claim(runkit, str(run.id))
    url = f"{BASE}/{run.id}/logs/stream"

    async def produce() -> None:
        for start in range(0, total_lines, 250):
            await runkit.ops.append_logs(
                lease, [NewLogEntry(f"line {i}") for i in range(start, start + 250)]
            )
            await anyio.sleep(0.01)
        await runkit.ops.complete(lease, {})

    async def consume(c: httpx.AsyncClient, seed: int, out: list[str], ends: list[str]) -> None:
        rng = random.Random(seed)
        last: str | None = None
        while True:
            budget = rng.randint(1, 1500)
            headers = dict(AUTH)
            if last is not None:
                headers["Last-Event-ID"] = last
            async with c.stream("GET", url, headers=headers) as r:
                if r.status_code == 204:
                    return
                async for frame in events(r):
                    if frame.get("event") == "log":
                        out.append(frame["id"])
                        last = frame["id"]
                        budget -= 1
                        if budget == 0:
                            break  # disconnect at a random point
                    elif frame.get("event") == "end":
                        ends.append(frame["data"])
                        return

    async with serve(runkit) as c:
        results: list[tuple[list[str], list[str]]] = [([], []) for _ in range(3)]
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            for seed, (out, ends) in enumerate(results):
                tg.start_soon(consume, c, seed, out, ends)
    stored = [e.cursor async for e in all_entries(runkit, run.id)]
    assert len(stored) == total_lines + 4  # created, queued, running, succeeded
    for out, ends in results:
        assert out == stored  # every entry exactly once, in order
        assert len(ends) == 1 and json.loads(ends[0])["status"] == "succeeded"


async def all_entries(runkit: Runkit, run_id: Any) -> AsyncIterator[Any]:
    """Every entry of the run's log, page by page."""
    after = None
    while True:
        page = await runkit.logs(run_id, after=after, limit=500)
        for entry in page.entries:
            yield entry
        if not page.has_more:
            return
        after = page.next_cursor
