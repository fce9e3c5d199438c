"""What is sent again and what is not, against scripted answers (``httpx.MockTransport``):
503s, 429s, broken and refused connections, ``Retry-After``; a log stream that drops and
resumes with ``Last-Event-ID``; the headers every request carries. Both clients, the async
one on asyncio and trio."""

from __future__ import annotations

import json
import types
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest
from client_support import (
    anyio_backend,  # noqa: F401 (fixtures)
    close_client,
    flavour_fixture,  # noqa: F401
    open_client,
)

import runkit
from runkit import Status
from runkit.client import USER_AGENT, AuthenticationError, Client, ClientError, _async, _sync
from runkit.client._retry import MAX_RETRY_AFTER, Retries, retry_after
from runkit_contrib import _wire

pytestmark = pytest.mark.anyio

URL = "http://runkit.test"
RUN_ID = uuid.uuid4()
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def run_json(status: Status = Status.PENDING) -> dict[str, Any]:
    run = runkit.Run(id=RUN_ID, kind="noop", status=status, created_at=NOW, updated_at=NOW)
    return _wire.run_to_wire(run, status.value, {})


Step = httpx.Response | type[httpx.TransportError]


class Script:
    """A transport that answers each request with the next step (a response, or a transport
    error raised), and keeps the requests it saw."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert self.steps, f"unexpected request {request.method} {request.url}"
        step = self.steps.pop(0)
        if isinstance(step, httpx.Response):
            return step
        raise step("scripted", request=request)


def busy(status: int = 503, after: str | None = "0") -> httpx.Response:
    headers = {"Retry-After": after} if after is not None else {}
    return httpx.Response(status, json={"detail": "storage unavailable"}, headers=headers)


def ok(status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=run_json(), headers=headers)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait of both clients, recorded instead of slept."""
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)

    async def asleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(
        _sync, "time", types.SimpleNamespace(sleep=sleep, monotonic=_sync.time.monotonic)
    )
    monkeypatch.setattr(
        _async, "anyio", types.SimpleNamespace(sleep=asleep, fail_after=anyio.fail_after)
    )
    return waited


async def scripted(flavour: tuple[str, str], script: Script, **options: Any) -> Any:
    options.setdefault("api_key", "rk_test")
    return await open_client(flavour, URL, transport=script.transport, **options)


# ------------------------------------------------------------------ safe requests ------
async def test_a_get_is_retried_through_two_503s(
    flavour: tuple[str, str], sleeps: list[float]
) -> None:
    script = Script(busy(), busy(), ok())
    client = await scripted(flavour, script)
    try:
        assert (await client.get(RUN_ID)).id == RUN_ID
    finally:
        await close_client(client)
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("GET", f"/api/v1/action-runs/{RUN_ID}")
    ] * 3
    assert len(sleeps) == 2


async def test_retries_run_out(flavour: tuple[str, str], sleeps: list[float]) -> None:
    script = Script(busy(), busy(), busy())
    client = await scripted(flavour, script, retries=2)
    try:
        with pytest.raises(runkit.StorageUnavailable):
            await client.list()
    finally:
        await close_client(client)
    assert len(script.requests) == 3 and len(sleeps) == 2


async def test_waits_grow_and_honour_retry_after(
    flavour: tuple[str, str], sleeps: list[float]
) -> None:
    script = Script(
        busy(after=None), busy(after=None), busy(after="7"), busy(429, after=None), ok()
    )
    client = await scripted(flavour, script, retries=4, backoff=1.0)
    try:
        await client.get(RUN_ID)
    finally:
        await close_client(client)
    first, second, third, fourth = sleeps
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0 and third == 7.0
    assert 4.0 <= fourth <= 8.0


async def test_a_retry_after_too_long_is_not_waited_for(
    flavour: tuple[str, str], sleeps: list[float]
) -> None:
    script = Script(busy(after=str(int(MAX_RETRY_AFTER) + 1)))
    client = await scripted(flavour, script)
    try:
        with pytest.raises(runkit.StorageUnavailable):
            await client.get(RUN_ID)
    finally:
        await close_client(client)
    assert sleeps == []


async def test_a_create_with_a_key_is_retried_one_without_is_not(
    flavour: tuple[str, str], sleeps: list[float]
) -> None:
    keyed = Script(busy(), httpx.ReadError, ok(201))
    client = await scripted(flavour, keyed)
    try:
        created = await client.create("noop", {"a": 1}, idempotency_key="k", execute=True)
    finally:
        await close_client(client)
    assert created.created and len(keyed.requests) == 3
    bodies = {r.content for r in keyed.requests}
    assert len(bodies) == 1
    assert json.loads(bodies.pop()) == {
        "kind": "noop",
        "definition": {"a": 1},
        "idempotencyKey": "k",
    }
    assert keyed.requests[0].url.params["execute"] == "true"

    keyless = Script(busy())
    client = await scripted(flavour, keyless)
    try:
        with pytest.raises(runkit.StorageUnavailable):
            await client.create("noop", {})
    finally:
        await close_client(client)
    assert len(keyless.requests) == 1

    replay = Script(ok(200, **{"Idempotent-Replayed": "true"}))
    client = await scripted(flavour, replay)
    try:
        assert (await client.create("noop", idempotency_key="k")).replayed
    finally:
        await close_client(client)


@pytest.mark.parametrize("action", ["execute", "pause", "resume", "cancel"])
async def test_moves_a_repeat_cannot_overdo_are_retried(
    flavour: tuple[str, str], sleeps: list[float], action: str
) -> None:
    script = Script(busy(), httpx.ReadError, busy(502, after=None), ok())
    client = await scripted(flavour, script)
    try:
        assert (await getattr(client, action)(RUN_ID)).id == RUN_ID
    finally:
        await close_client(client)
    assert [r.url.path for r in script.requests] == [f"/api/v1/action-runs/{RUN_ID}/{action}"] * 4


@pytest.mark.parametrize("action", ["retry", "approve", "reject"])
async def test_moves_a_repeat_could_overdo_are_retried_only_when_unsent(
    flavour: tuple[str, str], sleeps: list[float], action: str
) -> None:
    # Never sent (a refused connection) or refused before acting (429): sent again.
    script = Script(httpx.ConnectError, busy(429), ok())
    client = await scripted(flavour, script)
    try:
        assert (await getattr(client, action)(RUN_ID)).id == RUN_ID
        assert len(script.requests) == 3
        # A 503 or a broken connection: the run may have moved. Raised at once.
        script.steps = [busy()]
        with pytest.raises(runkit.StorageUnavailable):
            await getattr(client, action)(RUN_ID)
        script.steps = [httpx.ReadError]
        with pytest.raises(ClientError) as broken:
            await getattr(client, action)(RUN_ID)
        assert broken.value.status is None
    finally:
        await close_client(client)
    assert len(script.requests) == 5


async def test_a_delete_whose_answer_was_lost(
    flavour: tuple[str, str], sleeps: list[float]
) -> None:
    script = Script(httpx.RemoteProtocolError, httpx.Response(404, json={"detail": "gone"}))
    client = await scripted(flavour, script)
    try:
        assert await client.delete(RUN_ID) is None  # the lost attempt deleted it
        script.steps = [httpx.Response(404, json={"detail": "gone"})]
        with pytest.raises(runkit.RunNotFound):
            await client.delete(RUN_ID)  # no attempt before: it was never there
    finally:
        await close_client(client)


async def test_other_answers(flavour: tuple[str, str], sleeps: list[float]) -> None:
    script = Script(
        httpx.Response(401, json={"detail": "authentication required"}),
        httpx.Response(500, json={"detail": "internal server error"}),
        httpx.Response(413, text="too large"),
        httpx.Response(200, json={"unexpected": True}),
    )
    client = await scripted(flavour, script)
    try:
        with pytest.raises(AuthenticationError, match="authentication required"):
            await client.get(RUN_ID)
        with pytest.raises(ClientError) as failed:
            await client.get(RUN_ID)
        assert failed.value.status == 500 and "internal server error" in str(failed.value)
        with pytest.raises(ClientError) as large:
            await client.create("noop", {}, idempotency_key="k")
        assert large.value.status == 413
        with pytest.raises(ClientError, match="unexpected answer"):
            await client.get(RUN_ID)
    finally:
        await close_client(client)


# ------------------------------------------------------------------ the log stream ------
def frame(seq: int, message: str = "") -> bytes:
    cursor = f"{RUN_ID.hex[:8]}-{seq}"
    entry = {
        "id": cursor,
        "attempt": 1,
        "level": "info",
        "event": None,
        "message": message or f"entry {seq}",
        "data": {},
        "occurredAt": "2026-01-02T03:04:05Z",
        "workerId": None,
    }
    return f"id: {cursor}\nevent: log\ndata: {json.dumps(entry)}\n\n".encode()


END = b'event: end\ndata: {"status":"succeeded","displayStatus":"Succeeded"}\n\n'


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body of ``parts``, then (if given) a broken connection."""

    def __init__(self, *parts: bytes, broken: bool = False) -> None:
        self.parts, self.broken, self.closed = parts, broken, False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.parts
        if self.broken:
            raise httpx.ReadError("connection reset")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if self.closed:  # as a closed connection would, yields nothing more
                return
            yield part
        if self.broken:
            raise httpx.ReadError("connection reset")

    async def aclose(self) -> None:
        self.closed = True


def events(*parts: bytes, broken: bool = False) -> httpx.Response:
    headers = {"Content-Type": "text/event-stream; charset=utf-8"}
    return httpx.Response(200, headers=headers, stream=Body(*parts, broken=broken))


async def collect(client: Any, **options: Any) -> list[int]:
    return [e.seq async for e in client.stream_logs(RUN_ID, **options)]


async def test_a_dropped_stream_resumes_after_the_last_entry(
    flavour: tuple[str, str], sleeps: list[float]
) -> None:
    third = frame(3)
    script = Script(
        events(b"retry: 3000\n\n", frame(1), b": ping\n\n", frame(2), third[:40], broken=True),
        busy(),  # the reconnect answered 503: waited for, then again
        httpx.ConnectError,
        events(third, frame(4), END, frame(5)),  # nothing after the end counts
    )
    client = await scripted(flavour, script)
    try:
        assert await collect(client, after=f"{RUN_ID.hex[:8]}-0") == [1, 2, 3, 4]
    finally:
        await close_client(client)
    cursors = [r.headers.get("last-event-id") for r in script.requests]
    assert cursors == [None, f"{RUN_ID.hex[:8]}-2", f"{RUN_ID.hex[:8]}-2", f"{RUN_ID.hex[:8]}-2"]
    assert all(r.url.params["after"] == f"{RUN_ID.hex[:8]}-0" for r in script.requests)
    assert all(r.headers["accept"] == "text/event-stream" for r in script.requests)
    # Entries arrived on the broken connection: the first reconnect goes at once.
    assert sleeps[0] == 0.0 and len(sleeps) == 3


async def test_a_stream_answered_204_has_ended(
    flavour: tuple[str, str], sleeps: list[float]
) -> None:
    script = Script(events(frame(1), broken=True), httpx.Response(204))
    client = await scripted(flavour, script)
    try:
        assert await collect(client) == [1]
    finally:
        await close_client(client)


async def test_a_stream_that_cannot_reconnect_gives_up(
    flavour: tuple[str, str], sleeps: list[float]
) -> None:
    script = Script(
        events(frame(1), broken=True), httpx.ConnectError, httpx.ConnectError, httpx.ConnectError
    )
    client = await scripted(flavour, script, retries=2)
    seen: list[int] = []
    try:
        with pytest.raises(ClientError, match="cannot connect"):
            async for entry in client.stream_logs(RUN_ID):
                seen.append(entry.seq)
    finally:
        await close_client(client)
    assert seen == [1] and len(script.requests) == 4


async def test_a_stream_closed_early_then_gone(
    flavour: tuple[str, str], sleeps: list[float]
) -> None:
    """The server closes the stream of a run deleted meanwhile; the reconnect says 404."""
    script = Script(events(frame(1)), httpx.Response(404, json={"detail": "Not Found"}))
    client = await scripted(flavour, script)
    seen: list[int] = []
    try:
        with pytest.raises(runkit.RunNotFound):
            async for entry in client.stream_logs(RUN_ID):
                seen.append(entry.seq)
        script.steps = [events(b": ping\n\n") for _ in range(4)]  # 1 + 3 retries
        with pytest.raises(ClientError, match="keeps closing early"):
            await collect(client)
        script.steps = [events(b"event: log\ndata: {not json\n\n")]
        with pytest.raises(ClientError, match="unexpected log event"):
            await collect(client)
    finally:
        await close_client(client)
    assert seen == [1]


async def test_a_stream_refused(flavour: tuple[str, str], sleeps: list[float]) -> None:
    script = Script(httpx.Response(404, json={"detail": "Not Found"}))
    client = await scripted(flavour, script)
    try:
        with pytest.raises(runkit.RunNotFound):
            await collect(client)
    finally:
        await close_client(client)


# ------------------------------------------------------------------ what is sent ---------
def sent_headers(**options: Any) -> httpx.Headers:
    script = Script(ok())
    with Client(URL + "/runkit/api/v1/", transport=script.transport, **options) as client:
        client.get(RUN_ID)
    [request] = script.requests
    assert request.url.path == f"/runkit/api/v1/action-runs/{RUN_ID}"
    return request.headers


def test_headers_say_who_is_asking() -> None:
    plain = sent_headers(headers={"X-Trace": "t1"})
    assert plain["user-agent"] == USER_AGENT and USER_AGENT.startswith("runkit-client/")
    assert plain["x-trace"] == "t1" and "x-api-key" not in plain and "authorization" not in plain
    assert sent_headers(api_key="rk_a")["x-api-key"] == "rk_a"
    assert sent_headers(bearer="rk_b")["authorization"] == "Bearer rk_b"
    session = sent_headers(session="rks1.token")
    assert session["cookie"] == "vai_token=rks1.token" and session["x-runkit-csrf"] == "1"
    with pytest.raises(ValueError, match="one credential"):
        Client(URL, api_key="a", bearer="b")
    with pytest.raises(ValueError, match="http"):
        Client("runkit.test:8000")


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNKIT_URL", "http://127.0.0.1:9/api/v1")
    monkeypatch.setenv("RUNKIT_API_KEY", "rk_env")
    with Client.from_env() as client:
        assert client.url == "http://127.0.0.1:9" and "rk_env" not in repr(client)
        assert client._settings.headers["X-API-Key"] == "rk_env"
    with Client.from_env(bearer="rk_bearer") as client:
        assert "X-API-Key" not in client._settings.headers
    monkeypatch.delenv("RUNKIT_URL")
    with Client.from_env() as client:
        assert client.url == "http://127.0.0.1:8000"


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=12), usegmt=True)
    assert retry_after(httpx.Headers({"Retry-After": "5"}), now) == 5.0
    assert retry_after(httpx.Headers({"Retry-After": later}), now) == 12.0
    assert retry_after(httpx.Headers({"Retry-After": "soon"}), now) is None
    assert retry_after(httpx.Headers(), now) is None
    delays: Callable[[int], float] = Retries(5, 0.5).delay
    assert all(0.25 <= delays(1) <= 0.5 for _ in range(50))
    assert all(15.0 <= delays(10) <= 30.0 for _ in range(50))  # capped
