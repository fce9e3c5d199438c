"""Every method of ``runkit.client`` against a real ``runkit serve`` (SQLite and PostgreSQL),
through the async client on asyncio and on trio and through the sync client: the models
and exceptions are the in-process API's."""

from __future__ import annotations

import uuid
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from client_support import (
    Server,
    anyio_backend,  # noqa: F401 (fixtures)
    client_fixture,  # noqa: F401
    close_client,
    flavour_fixture,  # noqa: F401
    free_port,
    label,
    open_client,
    pg_module_url_fixture,  # noqa: F401
    server_fixture,  # noqa: F401
)

import runkit
from runkit import Action, Status
from runkit.client import AuthenticationError, ClientError, RemoteRun

pytestmark = pytest.mark.anyio


async def reach(client: Any, run_id: uuid.UUID, status: Status, after: str | None = None) -> str:
    """Until the run's log, after ``after``, says it moved to ``status`` (its live stream:
    no polling); the cursor of that entry."""
    async with aclosing(client.stream_logs(run_id, after=after)) as entries:
        async for entry in entries:
            if entry.event == "status.changed" and entry.data["to"] == status.value:
                return str(entry.cursor)
    raise AssertionError(f"the run ended without reaching {status}")


# ------------------------------------------------------------------ create, get --------
async def test_create_tells_a_new_run_from_a_replay(client: Any) -> None:
    key, action = f"key-{uuid.uuid4()}", label()
    first = await client.create(
        "emit_logs", {"count": 1}, idempotency_key=key, action_id=action, concurrency_key="c"
    )
    assert isinstance(first, runkit.Created) and first.created and not first.replayed
    run = first.run
    assert isinstance(run, runkit.Run) and run.status is Status.PENDING
    assert (run.kind, run.definition, run.action_id) == ("emit_logs", {"count": 1}, action)
    assert (run.idempotency_key, run.concurrency_key) == (key, "c")
    assert (run.trigger_method, run.trigger_source_type, run.trigger_source_id) == (
        "api",
        "api_key",
        "admin",
    )
    again = await client.create(
        "emit_logs", {"count": 1}, idempotency_key=key, action_id=action, concurrency_key="c"
    )
    assert again.replayed and again.run.id == run.id
    assert await client.get(run.id) == run
    assert await client.get(str(run.id)) == run
    # The server's displayStatus rides along (it says what only the server can see).
    assert isinstance(run, RemoteRun) and run.display_status == "Pending · not yet executed"
    page = await client.list(action_id=action)
    assert [r.display_status for r in page.runs] == ["Pending · not yet executed"]


async def test_execute_wait_and_the_log_in_pages(client: Any) -> None:
    run = (await client.create("emit_logs", {"count": 7})).run
    queued = await client.execute(run.id)
    assert queued.id == run.id and queued.status is not Status.PENDING
    done = await client.wait(run.id, timeout=60)
    assert done.status is Status.SUCCEEDED and done.result == {"count": 7}
    assert done.completed_at is not None and done.duration_seconds is not None

    everything = (await client.logs(run.id, limit=500)).entries
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
    assert [e.message for e in everything if e.event is None] == [f"entry {i}" for i in range(7)]
    assert all(isinstance(e, runkit.LogEntry) and e.run_id == run.id for e in everything)
    first = await client.logs(run.id, limit=3)
    assert first.entries == everything[:3] and first.has_more
    assert first.next_cursor == everything[2].cursor == f"{run.id.hex[:8]}-3"
    second = await client.logs(run.id, after=first.next_cursor, limit=3)
    assert second.entries == everything[3:6]
    cursor = runkit.Cursor(run.id, 6)
    assert (await client.logs(run.id, after=cursor)).entries == everything[6:]
    paged = [e async for e in client.iter_logs(run.id, page_size=2)]
    assert paged == list(everything)
    assert [e async for e in client.iter_logs(run.id, after=everything[-2].cursor)] == [
        everything[-1]
    ]
    # The stream of an ended run from its last entry: a 204, nothing to yield.
    assert [e async for e in client.stream_logs(run.id, after=everything[-1].cursor)] == []


async def test_wait_times_out_with_the_run_unfinished(client: Any) -> None:
    run = (await client.create("sleep", {"seconds": 30}, execute=True)).run
    with pytest.raises(TimeoutError):
        await client.wait(run.id, timeout=0.3, poll=0.1)
    await client.cancel(run.id)
    assert (await client.wait(run.id, timeout=60)).status is Status.CANCELLED


# ------------------------------------------------------------------ lists --------------
async def test_list_pages_and_filters(client: Any) -> None:
    action = label()
    made = [(await client.create("noop", {}, action_id=action)).run for _ in range(5)]
    newest_first = [r.id for r in reversed(made)]
    page = await client.list(action_id=action, limit=2)
    assert isinstance(page, runkit.RunPage)
    assert (page.total, page.limit, page.offset, page.has_next) == (5, 2, 0, True)
    assert [r.id for r in page.runs] == newest_first[:2]
    last = await client.list(action_id=action, limit=2, offset=4)
    assert [r.id for r in last.runs] == newest_first[4:] and not last.has_next
    assert [r.id async for r in client.iter_runs(action_id=action, page_size=2)] == newest_first

    await client.execute(made[0].id)
    pending = await client.list(action_id=action, status=Status.PENDING)
    assert {r.id for r in pending.runs} == {r.id for r in made[1:]}
    assert (await client.list(action_id=action, status="pending")).total == 4
    assert (await client.list(action_id=action, kind="sleep")).total == 0

    child = (await client.create("noop", {}, parent=made[1].id)).run
    assert child.parent_action_run_id == made[1].id
    children = await client.list(parent=made[1].id)
    assert [r.id for r in children.runs] == [child.id]
    # The in-process API's name for the filter works too.
    same = await client.list(parent_action_run_id=str(made[1].id))
    assert [r.id for r in same.runs] == [child.id]
    assert [r.id async for r in client.iter_runs(parent=made[1].id)] == [child.id]


async def test_iter_runs_while_runs_come_and_go(client: Any) -> None:
    """Newest first, offsets shift: runs created meanwhile are not yielded and none comes
    twice; runs deleted meanwhile (behind the pages read) make it skip none."""
    action = label()
    made = [(await client.create("noop", {}, action_id=action)).run for _ in range(9)]
    seen: list[uuid.UUID] = []
    async with aclosing(client.iter_runs(action_id=action, page_size=3)) as runs:
        async for run in runs:
            seen.append(run.id)
            if len(seen) == 3:  # the first page read: delete two of it
                for gone in seen[:2]:
                    await client.delete(gone)
            if len(seen) == 6:  # the second page read: two newer runs push the rest down
                for _ in range(2):
                    await client.create("noop", {}, action_id=action)
    assert seen == [r.id for r in reversed(made)]


# ------------------------------------------------------------------ moves --------------
async def test_pause_resume_cancel_retry_and_delete(client: Any) -> None:
    run = (await client.create("sleep", {"seconds": 60}, execute=True)).run
    started = await reach(client, run.id, Status.RUNNING)
    assert (await client.pause(run.id)).status in {Status.PAUSING, Status.PAUSED}
    paused = await reach(client, run.id, Status.PAUSED, after=started)
    assert (await client.resume(run.id)).status is Status.QUEUED
    await reach(client, run.id, Status.RUNNING, after=paused)
    assert (await client.cancel(run.id)).status in {Status.CANCELLING, Status.CANCELLED}
    assert (await client.wait(run.id, timeout=60)).status is Status.CANCELLED
    retried = await client.retry(run.id)
    assert retried.status is Status.QUEUED and retried.retry_count == 1
    await client.cancel(run.id)
    await client.wait(run.id, timeout=60)
    assert await client.delete(run.id) is None
    with pytest.raises(runkit.RunNotFound):
        await client.get(run.id)
    with pytest.raises(runkit.RunNotFound):
        await client.delete(run.id)


async def test_approve_and_reject(client: Any) -> None:
    gate = (await client.create("approval_gate", {"title": "ship it"}, execute=True)).run
    await reach(client, gate.id, Status.AWAITING_APPROVAL)
    approved = await client.approve(gate.id, reason="looks right")
    assert approved.status is Status.SUCCEEDED
    assert [(a["by"], a["decision"], a["reason"]) for a in approved.approvals] == [
        ("admin", "approve", "looks right")
    ]
    other = (await client.create("approval_gate", {}, execute=True)).run
    await reach(client, other.id, Status.AWAITING_APPROVAL)
    rejected = await client.reject(other.id, reason="not today")
    assert rejected.status is Status.REJECTED
    assert rejected.approvals[0]["decision"] == "reject"
    third = (await client.create("approval_gate", {}, execute=True)).run
    await reach(client, third.id, Status.AWAITING_APPROVAL)
    assert (await client.reject(third.id)).approvals[0]["reason"] is None


# ------------------------------------------------------------------ errors -------------
async def test_errors_are_the_in_process_ones(client: Any) -> None:
    missing = uuid.uuid4()
    with pytest.raises(runkit.RunNotFound) as not_found:
        await client.get(missing)
    assert not_found.value.run_id == missing

    done = (await client.create("noop", {}, execute=True)).run
    await client.wait(done.id, timeout=60)
    with pytest.raises(runkit.IllegalTransition) as illegal:
        await client.execute(done.id)
    assert illegal.value.status is Status.SUCCEEDED and illegal.value.action is Action.EXECUTE
    assert illegal.value.allowed == (Action.DELETE,) and "it is succeeded" in str(illegal.value)

    with pytest.raises(runkit.ValidationError) as invalid:
        await client.create("no_such_kind", {})
    assert not isinstance(invalid.value, runkit.IdempotencyConflict)
    assert [(d.loc, d.type) for d in invalid.value.details] == [(("body", "kind"), "enum")]
    with pytest.raises(runkit.ValidationError) as bad_cursor:
        await client.logs(done.id, after="nonsense")
    assert bad_cursor.value.details[0].loc == ("query", "after")
    with pytest.raises(runkit.ValidationError) as bad_id:
        await client.get("not-a-run-id")
    assert bad_id.value.details[0].loc == ("path", "run_id")

    key = f"key-{uuid.uuid4()}"
    first = (await client.create("emit_logs", {"count": 1}, idempotency_key=key)).run
    with pytest.raises(runkit.IdempotencyConflict) as conflict:
        await client.create("emit_logs", {"count": 2}, idempotency_key=key)
    assert conflict.value.key == key and conflict.value.existing_run_id == first.id
    assert [d.loc for d in conflict.value.details] == [("body", "idempotencyKey")]


async def test_credentials(flavour: tuple[str, str], server: Server) -> None:
    reader = await open_client(flavour, server.url, api_key=server.keys["reader"])
    try:
        assert isinstance(await reader.list(limit=1), runkit.RunPage)
        with pytest.raises(runkit.NotAllowed):
            await reader.create("noop", {})
    finally:
        await close_client(reader)
    bearer = await open_client(flavour, server.url + "/api/v1/", bearer=server.keys["admin"])
    try:
        assert (await bearer.create("noop", {})).run.trigger_source_id == "admin"
    finally:
        await close_client(bearer)
    for options in ({}, {"api_key": "rk_not_a_key_of_this_server"}):
        stranger = await open_client(flavour, server.url, **options)
        try:
            with pytest.raises(AuthenticationError):
                await stranger.list()
        finally:
            await close_client(stranger)


async def test_a_session_cookie_signs_in_as_a_person(
    flavour: tuple[str, str], server: Server
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post("/api/v1/sessions", json={"apiKey": server.keys["admin"]})
        assert answer.status_code == 200, answer.text
        token = answer.cookies["vai_token"]
    person = await open_client(flavour, server.url, session=token)
    try:
        created = (await person.create("noop", {})).run  # a POST: the CSRF header is sent
        assert (created.trigger_method, created.trigger_source_type) == ("ui", "user")
        assert (await person.cancel(created.id)).status is Status.CANCELLED
    finally:
        await close_client(person)


async def test_nothing_listening(flavour: tuple[str, str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    nobody = await open_client(flavour, url, retries=1, backoff=0.01)
    try:
        with pytest.raises(ClientError) as refused:
            await nobody.get(uuid.uuid4())
    finally:
        await close_client(nobody)
    assert refused.value.status is None and str(refused.value).startswith(
        f"cannot connect to {url}"
    )


# ------------------------------------------------------------------ the server ---------
async def test_kinds_and_workers(client: Any) -> None:
    kinds = {k.name: k for k in await client.kinds()}
    assert {"approval_gate", "emit_logs", "noop", "sleep"} <= kinds.keys()
    assert list(kinds) == sorted(kinds)
    sleep = kinds["sleep"]
    assert (sleep.display_name, sleep.capabilities.pausable) == ("Sleep", True)
    assert sleep.definition_schema["type"] == "object"
    assert "seconds" in sleep.definition_schema["properties"]
    assert kinds["approval_gate"].capabilities.cancellable
    workers = await client.workers()
    assert workers and all(isinstance(w, runkit.WorkerInfo) for w in workers)
    assert workers[0].concurrency == 2 and "noop" in workers[0].kinds
    assert workers[0].last_seen_at >= workers[0].started_at
