"""``Client.create_many`` and ``AsyncClient.create_many``: against a real ``runkit serve``
(SQLite and PostgreSQL; the async client on asyncio and trio, the sync one) the answers are
the in-process API's (``Created``, ``IdempotencyConflict``) with remote runs; against
scripted answers (``httpx.MockTransport``), a batch is sent again only when every item
carries an idempotency key, or when the server surely did not act."""

from __future__ import annotations

import json
import types
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest
from client_support import (
    Server,
    anyio_backend,  # noqa: F401 (fixtures)
    client_fixture,  # noqa: F401
    close_client,
    flavour_fixture,  # noqa: F401
    label,
    open_client,
    pg_module_url_fixture,  # noqa: F401
    server_fixture,  # noqa: F401
)

import runkit
from runkit import NewRun, Status
from runkit.client import ClientError, RemoteRun, _async, _sync
from runkit_contrib import _wire

pytestmark = pytest.mark.anyio


# ------------------------------------------------------------------ a live server -------
async def test_each_item_answers_in_order(client: Any) -> None:
    action, key = label(), f"key-{uuid.uuid4()}"
    held = await client.create("emit_logs", {"count": 1}, idempotency_key=key, action_id=action)
    answers = await client.create_many(
        [
            NewRun("emit_logs", {"count": 1}, idempotency_key=key, action_id=action),  # same
            NewRun("emit_logs", {"count": 2}, idempotency_key=key, action_id=action),  # other
            NewRun("noop", {}, action_id=action, concurrency_key="c"),
            NewRun("noop", parent_action_run_id=held.run.id, action_id=action),
        ]
    )
    replay, conflict, new, child = answers
    assert isinstance(replay, runkit.Created) and replay.replayed
    assert replay.run == held.run
    assert isinstance(conflict, runkit.IdempotencyConflict)
    assert (conflict.key, conflict.existing_run_id) == (key, held.run.id)
    (problem,) = conflict.details
    assert problem.loc == ("body", "items", 1, "idempotencyKey")
    assert problem.type == "idempotency_conflict"
    assert isinstance(new, runkit.Created) and new.created
    run = new.run
    assert isinstance(run, RemoteRun) and run.display_status == "Pending · not yet executed"
    assert (run.kind, run.concurrency_key, run.status) == ("noop", "c", Status.PENDING)
    assert (run.trigger_method, run.trigger_source_id) == ("api", "admin")
    assert await client.get(run.id) == run
    assert isinstance(child, runkit.Created) and child.run.parent_action_run_id == held.run.id
    assert (await client.list(action_id=action)).total == 3
    assert await client.create_many([]) == []


async def test_execute_queues_every_item(client: Any) -> None:
    action = label()
    answers = await client.create_many(
        [NewRun("noop", action_id=action, execute=True) for _ in range(3)]
    )
    assert all(isinstance(a, runkit.Created) and a.created for a in answers)
    for answer in answers:
        assert (await client.wait(answer.run.id, timeout=60)).status is Status.SUCCEEDED


async def test_an_invalid_item_writes_nothing(client: Any) -> None:
    action = label()
    items = [
        NewRun("noop", action_id=action),
        NewRun("no_such_kind", action_id=action),
        NewRun("sleep", {"seconds": -1}, action_id=action),
    ]
    with pytest.raises(runkit.ValidationError) as caught:
        await client.create_many(items)
    assert [d.loc[:4] for d in caught.value.details] == [
        ("body", "items", 1, "kind"),
        ("body", "items", 2, "definition"),
    ]
    assert (await client.list(action_id=action)).total == 0


async def test_what_http_cannot_carry_is_refused_before_sending(client: Any) -> None:
    action = label()
    with pytest.raises(ValueError, match="execute"):
        await client.create_many([NewRun("noop", action_id=action, execute=True), NewRun("noop")])
    with pytest.raises(ValueError, match="concurrency_limit"):
        await client.create_many([NewRun("noop", concurrency_key="k", concurrency_limit=2)])
    with pytest.raises(runkit.ValidationError) as caught:
        await client.create_many([NewRun("noop"), {"kind": "noop"}])
    assert [d.loc for d in caught.value.details] == [("body", "items", 1)]
    assert (await client.list(action_id=action)).total == 0


async def test_a_reader_may_not(flavour: tuple[str, str], server: Server) -> None:
    reader = await open_client(flavour, server.url, api_key=server.keys["reader"])
    try:
        with pytest.raises(runkit.NotAllowed):
            await reader.create_many([NewRun("noop")])
    finally:
        await close_client(reader)


# ------------------------------------------------------------------ retries -------------
URL = "http://runkit.test"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def answer(*statuses: int) -> httpx.Response:
    """A batch answer: a run for 201 and 200, a conflict for 422."""
    items: list[dict[str, Any]] = []
    for i, status in enumerate(statuses):
        if status == 422:
            loc = ["body", "items", i, "idempotencyKey"]
            msg = f"idempotency key 'k{i}' was already used by run {uuid.UUID(int=i)} with ..."
            error = {"detail": [{"loc": loc, "msg": msg, "type": "idempotency_conflict"}]}
            items.append({"status": 422, "actionRun": None, "error": error})
            continue
        run = runkit.Run(uuid.uuid4(), "noop", Status.PENDING, NOW, NOW)
        wired = _wire.run_to_wire(run, "Pending", {})
        items.append({"status": status, "actionRun": wired, "error": None})
    return httpx.Response(200, json={"items": items})


def busy(status: int = 503) -> httpx.Response:
    return httpx.Response(status, json={"detail": "busy"}, headers={"Retry-After": "0"})


class Script:
    """Answers each request with the next step (a response, or a transport error raised)."""

    def __init__(self, *steps: httpx.Response | type[httpx.TransportError]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, httpx.Response):
            return step
        raise step("scripted", request=request)


@pytest.fixture(name="no_sleeping")
def no_sleeping_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retries' waits, skipped."""

    async def asleep(seconds: float) -> None:
        pass

    clock = _sync.time
    monkeypatch.setattr(
        _sync, "time", types.SimpleNamespace(sleep=lambda s: None, monotonic=clock.monotonic)
    )
    monkeypatch.setattr(
        _async, "anyio", types.SimpleNamespace(sleep=asleep, fail_after=anyio.fail_after)
    )


async def scripted(flavour: tuple[str, str], script: Script) -> Any:
    """A client of ``script``'s answers; the tests that use it skip the waits."""
    return await open_client(flavour, URL, api_key="rk_test", transport=script.transport)


@pytest.mark.usefixtures("no_sleeping")
async def test_a_batch_whose_items_all_have_keys_is_retried(flavour: tuple[str, str]) -> None:
    script = Script(busy(), httpx.ReadError, busy(502), answer(201, 200, 422))
    client = await scripted(flavour, script)
    try:
        items = [NewRun("noop", {"n": i}, idempotency_key=f"k{i}", execute=True) for i in range(3)]
        got = await client.create_many(items)
    finally:
        await close_client(client)
    assert [type(a).__name__ for a in got] == ["Created", "Created", "IdempotencyConflict"]
    assert [a.created for a in got[:2]] == [True, False]
    assert got[2].key == "k2" and got[2].existing_run_id == uuid.UUID(int=2)
    assert len(script.requests) == 4 and len({r.content for r in script.requests}) == 1
    sent = script.requests[0]
    assert (sent.method, sent.url.path) == ("POST", "/api/v1/action-runs:batch")
    assert sent.url.params["execute"] == "true"
    assert json.loads(sent.content) == {
        "items": [
            {"kind": "noop", "definition": {"n": i}, "idempotencyKey": f"k{i}"} for i in range(3)
        ]
    }


@pytest.mark.usefixtures("no_sleeping")
async def test_a_batch_with_a_keyless_item_is_retried_only_when_unsent(
    flavour: tuple[str, str],
) -> None:
    items = [NewRun("noop", idempotency_key="k"), NewRun("noop")]
    script = Script(httpx.ConnectError, busy(429), answer(201, 201), busy(), httpx.ReadError)
    client = await scripted(flavour, script)
    try:
        assert len(await client.create_many(items)) == 2
        assert len(script.requests) == 3
        with pytest.raises(runkit.StorageUnavailable):  # it may have been written
            await client.create_many(items)
        with pytest.raises(ClientError) as broken:
            await client.create_many(items)
        assert broken.value.status is None
    finally:
        await close_client(client)
    assert len(script.requests) == 5
    assert "execute" not in script.requests[0].url.params


@pytest.mark.usefixtures("no_sleeping")
async def test_an_answer_that_does_not_match_the_items(flavour: tuple[str, str]) -> None:
    script = Script(answer(201), httpx.Response(200, json={"items": [{"status": 409}]}))
    client = await scripted(flavour, script)
    try:
        for _ in range(2):
            with pytest.raises(ClientError, match="unexpected answer"):
                await client.create_many([NewRun("noop", idempotency_key="a")] * 2)
    finally:
        await close_client(client)
