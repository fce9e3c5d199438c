"""Many streams of one run share one live tail: every client gets every entry once, in
order, while the store is read about once per wake-up, not once per client."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import anyio
import pytest
from api_support import AUTH, BASE, claim
from test_http_sse import events, serve

from runkit import NewLogEntry, Runkit

pytestmark = pytest.mark.anyio

CLIENTS = 40
APPENDS = 60


async def test_forty_streams_share_the_reads(runkit: Runkit) -> None:
    run = (await runkit.create("free", {})).run
    lease = await claim(runkit, str(run.id))
    reads = 0
    real_read = runkit.store.read_logs

    async def counting_read(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_read(*args, **kwargs)

    received: list[list[int]] = [[] for _ in range(CLIENTS)]
    url = f"{BASE}/{run.id}/logs/stream"
    with mock.patch.object(runkit.store, "read_logs", counting_read):
        async with serve(runkit, poll_interval=5.0) as c:

            async def client(i: int, ready: anyio.Event) -> None:
                async with c.stream("GET", url, headers=AUTH) as r:
                    ready.set()
                    async for frame in events(r):
                        if frame.get("event") == "log":
                            entry = json.loads(frame["data"])
                            received[i].append(int(entry["id"].rpartition("-")[2]))
                        if frame.get("event") == "end":
                            return

            async with anyio.create_task_group() as tg:
                for i in range(CLIENTS):
                    ready = anyio.Event()
                    tg.start_soon(client, i, ready)
                    await ready.wait()
                reads_before_live = reads
                for n in range(APPENDS):
                    await runkit.ops.append_logs(lease, [NewLogEntry(f"line {n}")])
                    await anyio.sleep(0.005)
                await runkit.ops.complete(lease, {})
    expected = [e.seq for e in (await runkit.logs(run.id, limit=500)).entries]
    assert all(got == expected for got in received), "a client missed or repeated an entry"
    live_reads = reads - reads_before_live
    # One shared read per wake-up (plus the end's checks), where one read per client per
    # append would be CLIENTS * APPENDS = 2,400.
    assert live_reads <= 3 * (APPENDS + 5), live_reads
