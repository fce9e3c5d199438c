"""``stream_logs`` live over a real ``runkit serve`` (SQLite and PostgreSQL), through a TCP
proxy that cuts the connection three times at chosen bytes: every entry arrives exactly
once, in order, whatever the cut left half-sent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import pytest
from client_support import (
    Server,
    anyio_backend,  # noqa: F401 (fixtures)
    client_fixture,  # noqa: F401
    close_client,
    flavour_fixture,  # noqa: F401
    open_client,
    pg_module_url_fixture,  # noqa: F401
    server_fixture,  # noqa: F401
)

import runkit
from runkit import Status
from tcp_proxy import TcpProxy, cut_after, cut_inside

pytestmark = pytest.mark.anyio

COUNT = 1000


@pytest.fixture
def proxy(server: Server) -> Iterator[TcpProxy]:
    with TcpProxy(server.port) as running:
        yield running


def marker(i: int) -> bytes:
    """The bytes of entry ``i``'s message in its frame (compact JSON, as the server writes)."""
    return f'"message":"entry {i}"'.encode()


async def test_a_stream_cut_three_times_delivers_each_entry_once(
    flavour: tuple[str, str], server: Server, client: Any, proxy: TcpProxy
) -> None:
    proxy.plan(
        # Mid-line: entry 100's frame half-sent; it is sent again whole after the resume.
        cut_inside(marker(100)),
        # Entry 400's frame whole but for the blank line that ends it: not an event yet.
        cut_after(marker(400), b"\n\n", extra=1),
        # Entry 700's frame whole, blank line included: delivered, so not sent again.
        cut_after(marker(700), b"\n\n", extra=2),
    )
    run = (await client.create("emit_logs", {"count": COUNT}, execute=True)).run
    through = await open_client(flavour, proxy.url, api_key=server.keys["admin"], backoff=0.05)
    try:
        async with aclosing(through.stream_logs(run.id)) as stream:
            entries = [entry async for entry in stream]
    finally:
        await close_client(through)
    assert proxy.cuts_made == 3 and proxy.accepted >= 4
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert [e.message for e in entries if e.event is None] == [f"entry {i}" for i in range(COUNT)]
    assert entries[-1].data["to"] == "succeeded"
    assert entries == [e async for e in client.iter_logs(run.id)]


async def test_entries_arrive_live_and_the_end_ends_the_stream(client: Any) -> None:
    run = (await client.create("emit_logs", {"count": 20, "intervalSeconds": 0.01})).run
    seen: list[runkit.LogEntry] = []
    async with aclosing(client.stream_logs(run.id)) as stream:
        async for entry in stream:
            seen.append(entry)
            if len(seen) == 1:
                # The stream is open and the run still pending: the rest comes live.
                assert entry.data["to"] == "pending"
                await client.execute(run.id)
    assert [e.message for e in seen if e.event is None] == [f"entry {i}" for i in range(20)]
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert (await client.get(run.id)).status is Status.SUCCEEDED
    # After a cursor: only what follows it; after the last: nothing (the server's 204).
    tail = [e async for e in client.stream_logs(run.id, after=seen[-3].cursor)]
    assert tail == seen[-2:]
    assert [e async for e in client.stream_logs(run.id, after=seen[-1].cursor)] == []


async def test_the_stream_of_a_missing_run(client: Any) -> None:
    with pytest.raises(runkit.RunNotFound):
        async with aclosing(client.stream_logs(uuid.uuid4())) as stream:
            async for _ in stream:
                pass
