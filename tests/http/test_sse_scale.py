"""Log streams at scale (issue #12): idle streams cost the store O(1) reads an interval, not
one a stream; entries written behind the hub's back still arrive; a PostgreSQL notification
naming a run wakes only that run's tail; open streams are capped in total and per principal
(429 with ``Retry-After``), and a stream's slot frees when it ends.

Work is measured by counting store reads, never by wall time: the timeouts below only stop
a broken test from hanging."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

import anyio
import httpx
import pytest
import uvicorn
from api_support import API_KEY, AUTH, BASE, KINDS, claim
from test_http_sse import events

from run_support import scripted_wait
from runkit import NewLogEntry, Runkit
from runkit.engine._wakeups import (
    LOGS_CHANNEL,
    WORK_CHANNEL,
    Wakeups,
    decode_run_ids,
    encode_run_ids,
)
from runkit.storage.protocols import Notifications
from runkit.storage.sql.store import SqlStore
from runkit_contrib import ApiKeys, StreamSettings, asgi_app

pytestmark = pytest.mark.anyio

STREAMS = 200
#: Long enough that no periodic check falls in a test's window: only wake-ups act.
NEVER = 60.0
OTHER_KEY = "rk_other_test_key_987654321"


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    found: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return found


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Runkit]:
    async with Runkit(url, kinds=KINDS, autoload_plugins=False) as rk:
        yield rk


@asynccontextmanager
async def serve(
    runkit: Runkit, *, allow_anonymous: bool = False, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a loopback socket, and a client with no cap on its connections."""
    auth = ApiKeys({"tester": API_KEY, "other": OTHER_KEY})
    app = asgi_app(
        runkit, auth=auth, allow_anonymous=allow_anonymous, stream=StreamSettings(**settings)
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
            await anyio.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
            yield c
        server.should_exit = True


class Reads:
    """Counts the store's reads: by method, and (log pages and runs) by run."""

    METHODS = ("get", "list", "read_logs", "log_heads", "occupancy", "list_workers")

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        self.by_run: Counter[UUID] = Counter()
        for name in self.METHODS:
            monkeypatch.setattr(store, name, self._counting(name, getattr(store, name)))

    def _counting(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        async def read(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name in ("get", "read_logs"):
                self.by_run[args[0]] += 1
            return await real(*args, **kwargs)

        return read

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()
        self.by_run.clear()

    async def settle(self) -> None:
        """Until the streams stop reading their runs (joining reads each run a few times;
        the hub's own checks go on), or a few seconds (streams that poll never stop)."""
        for _ in range(20):
            before = self.total - self.calls["log_heads"]
            await anyio.sleep(0.3)
            if self.total - self.calls["log_heads"] == before:
                return


class Streams:
    """Open streams, each read by its own task into its list of frames."""

    def __init__(self, client: httpx.AsyncClient, tg: anyio.abc.TaskGroup) -> None:
        self.client = client
        self.tg = tg
        self.frames: dict[UUID, list[dict[str, str]]] = {}

    async def open(self, run_id: UUID) -> None:
        ready = anyio.Event()
        self.frames[run_id] = got = []

        async def read() -> None:
            url = f"{BASE}/{run_id}/logs/stream"
            async with self.client.stream("GET", url, headers=AUTH) as r:
                assert r.status_code == 200
                ready.set()
                async for frame in events(r):
                    got.append(frame)

        self.tg.start_soon(read)
        await ready.wait()

    async def until_seen(self, run_id: UUID, message: str) -> None:
        frames = self.frames[run_id]
        with anyio.fail_after(30):
            # The frames arrive in the stream's own task: look at its list until it shows.
            while not any(message in f.get("data", "") for f in frames):  # noqa: ASYNC110
                await anyio.sleep(0.02)


async def _runs(runkit: Runkit, n: int) -> list[UUID]:
    return [(await runkit.create("free", {})).run.id for _ in range(n)]


async def test_idle_streams_cost_o1_store_reads_an_interval(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    poll = 0.1
    async with opened(url) as runkit:
        run_ids = await _runs(runkit, STREAMS)
        reads = Reads(runkit.store, monkeypatch)
        settings: dict[str, Any] = {"poll_interval": poll, "max_streams_per_principal": STREAMS}
        async with serve(runkit, **settings) as c, anyio.create_task_group() as tg:
            streams = Streams(c, tg)
            for run_id in run_ids:
                await streams.open(run_id)
            await reads.settle()
            reads.reset()
            before = anyio.current_time()
            await anyio.sleep(10 * poll)
            intervals = (anyio.current_time() - before) / poll
            counted = dict(reads.calls)
            tg.cancel_scope.cancel()
    # One read of every head an interval at most (and none of any run), where one stream a
    # run polling its run would make 2 * STREAMS reads an interval.
    print(f"{url.partition(':')[0]}: {counted} in {intervals:.1f} intervals, {STREAMS} streams")
    assert sum(counted.values()) <= intervals + 3, counted
    assert reads.calls["log_heads"] >= 1, "the hub stopped checking"


async def test_an_entry_written_behind_the_hubs_back_arrives(url: str) -> None:
    async with opened(url) as runkit:
        run_ids = await _runs(runkit, 20)
        lease = await claim(runkit, str(run_ids[7]))
        async with serve(runkit, poll_interval=0.1) as c, anyio.create_task_group() as tg:
            streams = Streams(c, tg)
            for run_id in run_ids:
                await streams.open(run_id)
            # Straight to the store, as another process would: no wake-up names the run.
            await runkit.store.append_logs(run_ids[7], [NewLogEntry("late")], fence=lease)
            await streams.until_seen(run_ids[7], "late")
            tg.cancel_scope.cancel()
        assert not any("late" in str(streams.frames[r]) for r in run_ids if r != run_ids[7])


async def test_a_sqlite_commit_elsewhere_brings_the_check_forward(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened(sqlite_url) as runkit, SqlStore(sqlite_url) as elsewhere:
        run_ids = await _runs(runkit, 20)
        reads = Reads(runkit.store, monkeypatch)
        async with serve(runkit, poll_interval=NEVER) as c, anyio.create_task_group() as tg:
            streams = Streams(c, tg)
            for run_id in run_ids:
                await streams.open(run_id)
            await reads.settle()
            reads.reset()
            # Another connection commits: SQLite cannot say which run, the hub checks all.
            await elsewhere.append_logs(run_ids[3], [NewLogEntry("from elsewhere")])
            await streams.until_seen(run_ids[3], "from elsewhere")
            tg.cancel_scope.cancel()
    assert reads.calls["log_heads"] >= 1
    assert set(reads.by_run) == {run_ids[3]}, reads.by_run


async def test_a_postgres_notification_naming_a_run_wakes_only_its_tail(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened(pg_url) as runkit, opened(pg_url) as elsewhere:
        run_ids = await _runs(runkit, 50)
        reads = Reads(runkit.store, monkeypatch)
        async with serve(runkit, poll_interval=NEVER) as c, anyio.create_task_group() as tg:
            streams = Streams(c, tg)
            for run_id in run_ids:
                await streams.open(run_id)
            await reads.settle()
            reads.reset()
            # Another process appends and says so: its NOTIFY names the run.
            await elsewhere.store.append_logs(run_ids[5], [NewLogEntry("named")])
            elsewhere.wakeups.logs_appended(run_ids[5])
            await streams.until_seen(run_ids[5], "named")
            tg.cancel_scope.cancel()
    assert set(reads.by_run) == {run_ids[5]}, reads.by_run
    assert reads.calls["log_heads"] == 0, "a named wake-up needs no check of every run"


async def test_stream_caps_per_principal_and_in_total(runkit: Runkit) -> None:
    one, two = await _runs(runkit, 2)
    lease = await claim(runkit, str(two))
    other = {"X-API-Key": OTHER_KEY}
    caps = {"max_streams_per_principal": 2, "max_streams": 5, "busy_retry_after": 7}
    async with serve(runkit, allow_anonymous=True, **caps) as c, AsyncExitStack() as stack:

        async def get(headers: dict[str, str], run_id: UUID = one) -> httpx.Response:
            url = f"{BASE}/{run_id}/logs/stream"
            r = await stack.enter_async_context(c.stream("GET", url, headers=headers))
            if r.status_code != 200:
                await r.aread()
            return r

        async def eventually(headers: dict[str, str]) -> httpx.Response:
            with anyio.fail_after(30):
                while (r := await get(headers)).status_code != 200:
                    assert r.status_code == 429
                    await anyio.sleep(0.02)
            return r

        def refused(r: httpx.Response, who: str) -> None:
            assert r.status_code == 429 and r.headers["retry-after"] == "7"
            assert who in r.json()["detail"], r.json()

        first = await get(AUTH)
        assert first.status_code == 200 and (await get(AUTH)).status_code == 200
        refused(await get(AUTH), "this caller")
        # Anonymous callers share one allowance.
        assert (await get({})).status_code == 200 and (await get({})).status_code == 200
        refused(await get({}), "this caller")
        # Another principal still gets one, until the server's total is reached.
        ended = await get(other, two)
        assert ended.status_code == 200
        refused(await get(other), "this server")
        # A stream its client closes gives its slot back...
        await first.aclose()
        await eventually(AUTH)
        refused(await get(other), "this server")
        # ...and so does one that ends (its run finished).
        await runkit.ops.complete(lease, {})
        with anyio.fail_after(30):
            assert [f async for f in events(ended)][-1]["event"] == "end"
        await eventually(other)
        refused(await get(AUTH), "this caller")


async def test_an_ended_run_answers_204_even_at_the_cap(runkit: Runkit) -> None:
    live, done = await _runs(runkit, 2)
    await runkit.ops.complete(await claim(runkit, str(done)), {})
    last = (await runkit.logs(done)).entries[-1].cursor
    url = f"{BASE}/{live}/logs/stream"
    async with (
        serve(runkit, max_streams_per_principal=1) as c,
        c.stream("GET", url, headers=AUTH) as held,
    ):
        assert held.status_code == 200
        assert (await c.get(url, headers=AUTH)).status_code == 429
        headers = {**AUTH, "Last-Event-ID": last}
        r = await c.get(f"{BASE}/{done}/logs/stream", headers=headers)
        assert r.status_code == 204


# ---------------------------------------------------------- wake-ups that name runs ------
def test_log_payloads_name_runs_within_postgres_limit() -> None:
    ids = [uuid4() for _ in range(450)]
    payloads = encode_run_ids(ids)
    assert len(payloads) == 3 and all(len(p.encode()) < 8000 for p in payloads)
    assert decode_run_ids(payloads) == set(ids)
    # Past a few payloads a window, one empty payload says "any run".
    assert encode_run_ids(uuid4() for _ in range(1001)) == [""]
    assert decode_run_ids([""]) is None and decode_run_ids([str(ids[0]), "junk"]) is None


async def test_send_remote_names_the_runs_and_listen_remote_wakes_only_them() -> None:
    sent: list[tuple[str, str]] = []
    heard: list[UUID | None] = []
    sender, listener = Wakeups(), Wakeups()
    listener.observe_logs(heard.append)
    ids = [uuid4() for _ in range(250)]

    async def notify(channel: str, payload: str) -> None:
        sent.append((channel, payload))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender.send_remote, notify)
        while sender.remote is None:  # noqa: ASYNC110 - set when the sender starts
            await anyio.sleep(0.01)
        for run_id in ids:
            sender.logs_appended(run_id)
        sender.work_available()
        with anyio.fail_after(30):
            while len(sent) < 3:  # noqa: ASYNC110 - the sender coalesces for a few ms
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert sent[0] == (WORK_CHANNEL, "") and {c for c, _ in sent[1:]} == {LOGS_CHANNEL}
    assert decode_run_ids(p for _, p in sent[1:]) == set(ids)

    answers: list[set[str]] = [
        Notifications({LOGS_CHANNEL: {str(ids[0]), str(ids[1])}}),
        {LOGS_CHANNEL},  # a listener that hears no payloads: "any run"
    ]

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.listen_remote, scripted_wait(answers))
        with anyio.fail_after(30):
            while len(heard) < 3:  # noqa: ASYNC110 - the listener runs in its own task
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert set(heard[:2]) == {ids[0], ids[1]} and heard[2:] == [None]


async def test_postgres_notifications_carry_their_payloads(pg_url: str) -> None:
    async with SqlStore(pg_url, create_schema=True) as listener, SqlStore(pg_url) as notifier:
        channel = f"rk_test_{uuid4().hex}"  # NOTIFY is database-wide: a channel of our own
        heard: set[str] = set()
        with anyio.fail_after(30):
            while heard != {"a", "b"}:  # the LISTEN starts inside the first wait
                await notifier.notify(channel, "a")
                await notifier.notify(channel, "b")
                fired = await listener.wait_for_notifications([channel], 0.2)
                assert isinstance(fired, Notifications)
                if fired:
                    assert fired == {channel}
                    heard |= fired.payloads[channel]
