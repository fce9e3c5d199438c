"""``POST /api/v1/action-runs:batch``: one answer an item (201, 200 replay, 422 conflict) in
order, every item checked before anything is written (one 422 at ``["body", "items", i,
...]``), the create's auth, roles, tenant and hook, the body limit, and ``:batch`` never
taken for a run id. The answers' runs are checked on every store."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
from api_support import API_KEY, AUTH, BASE, KINDS
from hypothesis import given
from hypothesis import strategies as st

from runkit import Principal, Run, Runkit
from runkit.service.creates import MAX_BATCH as CORE_MAX_BATCH
from runkit.testing import json_objects, runs
from runkit_contrib import ApiKeys, asgi_app
from runkit_contrib._batch import run_json
from runkit_contrib._wire import MAX_BATCH, CreatedRuns, converter, to_json, wire_run

pytestmark = pytest.mark.anyio

BATCH = BASE + ":batch"


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def total(client: httpx.AsyncClient) -> int:
    listed = await client.get(BASE, headers=AUTH)
    assert listed.status_code == 200, listed.text
    count: int = listed.json()["total"]
    return count


def locs(response: httpx.Response) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    return [d["loc"] for d in response.json()["detail"]]


@pytest.fixture(name="stored")
async def stored_fixture(store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app over each store (memory, SQLite, PostgreSQL)."""
    async with (
        Runkit(store_url, kinds=KINDS, autoload_plugins=False) as rk,
        client_for(asgi_app(rk, auth=ApiKeys({"tester": API_KEY}))) as c,
    ):
        yield c


# ------------------------------------------------------------------ answers ---------------
async def test_each_item_answers_as_its_create_would(stored: httpx.AsyncClient) -> None:
    held = await stored.post(
        BASE,
        json={"kind": "echo", "definition": {"seconds": 1}, "idempotencyKey": "a"},
        headers=AUTH,
    )
    assert held.status_code == 201
    items = [
        {"kind": "echo", "definition": {"seconds": 1}, "idempotencyKey": "a"},  # the same
        {"kind": "echo", "definition": {"seconds": 2}, "idempotencyKey": "a"},  # another
        {"kind": "free", "actionId": "act", "concurrencyKey": "c"},
        {"kind": "free", "idempotencyKey": "b"},
        {"kind": "free", "idempotencyKey": "b"},  # repeats an item of this batch
    ]
    response = await stored.post(BATCH, json={"items": items}, headers=AUTH)
    assert response.status_code == 200, response.text
    answers = response.json()["items"]
    assert [a["status"] for a in answers] == [200, 422, 201, 201, 200]
    assert all(set(a) == {"status", "actionRun", "error"} for a in answers)
    replay, conflict, plain, new, again = answers
    assert replay["actionRun"] == held.json() and replay["error"] is None
    assert conflict["actionRun"] is None
    assert conflict["error"] == {
        "detail": [
            {
                "loc": ["body", "items", 1, "idempotencyKey"],
                "msg": f"idempotency key 'a' was already used by run {held.json()['id']} "
                "with a different request",
                "type": "idempotency_conflict",
            }
        ]
    }
    run = plain["actionRun"]
    assert (run["kind"], run["actionId"], run["concurrencyKey"]) == ("free", "act", "c")
    assert (run["status"], run["triggerMethod"], run["triggerSourceId"]) == (
        "pending",
        "api",
        "tester",
    )
    assert again["actionRun"]["id"] == new["actionRun"]["id"]
    for answer in (plain, new):  # as stored, as GET answers it
        got = await stored.get(f"{BASE}/{answer['actionRun']['id']}", headers=AUTH)
        assert got.json() == answer["actionRun"]
    assert await total(stored) == 3


async def test_the_same_batch_again_is_replayed(stored: httpx.AsyncClient) -> None:
    items = [{"kind": "free", "idempotencyKey": f"k{i}"} for i in range(3)]
    first = (await stored.post(BATCH, json={"items": items}, headers=AUTH)).json()["items"]
    again = (await stored.post(BATCH, json={"items": items}, headers=AUTH)).json()["items"]
    assert [a["status"] for a in first] == [201] * 3 and [a["status"] for a in again] == [200] * 3
    assert [a["actionRun"] for a in again] == [a["actionRun"] for a in first]
    assert await total(stored) == 3


async def test_an_empty_batch_answers_no_items(client: httpx.AsyncClient) -> None:
    response = await client.post(BATCH, json={"items": []}, headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"items": []})


@pytest.mark.parametrize(("value", "status"), [("true", "queued"), ("0", "pending")])
async def test_execute_applies_to_every_item(
    client: httpx.AsyncClient, value: str, status: str
) -> None:
    items = [{"kind": "free"}, {"kind": "echo", "definition": {"seconds": 0}}]
    response = await client.post(
        BATCH, params={"execute": value}, json={"items": items}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert [a["actionRun"]["status"] for a in response.json()["items"]] == [status] * 2


async def test_children_of_a_run(client: httpx.AsyncClient) -> None:
    parent = (await client.post(BASE, json={"kind": "free"}, headers=AUTH)).json()["id"]
    items = [{"kind": "free", "parentActionRunId": parent} for _ in range(3)]
    answers = (await client.post(BATCH, json={"items": items}, headers=AUTH)).json()["items"]
    listed = await client.get(BASE, params={"parent_action_run_id": parent}, headers=AUTH)
    assert [r["id"] for r in listed.json()["runs"]] == [a["actionRun"]["id"] for a in answers]


# ------------------------------------------------------------------ refusals: 422 ---------
async def test_every_bad_item_is_named_and_nothing_is_written(stored: httpx.AsyncClient) -> None:
    items: list[Any] = [
        {"kind": "free"},
        {"kind": "nope"},
        {"kind": "echo", "definition": {"seconds": "soon"}},
        {"kind": "free", "idempotencyKey": ""},
        {"kind": "free", "parentActionRunId": str(uuid.uuid4())},
        {"kind": "free", "concurrencyKey": "k" * 256},
    ]
    response = await stored.post(BATCH, json={"items": items}, headers=AUTH)
    assert locs(response) == [
        ["body", "items", 1, "kind"],
        ["body", "items", 2, "definition", "seconds"],
        ["body", "items", 3, "idempotencyKey"],
        ["body", "items", 4, "parentActionRunId"],
        ["body", "items", 5, "concurrencyKey"],
    ]
    assert await total(stored) == 0


async def test_each_item_s_envelope_is_checked_as_a_create_s(client: httpx.AsyncClient) -> None:
    """The envelope of every item first (one problem an item, as a create answers one); the
    values only once every envelope is right."""
    items: list[Any] = [
        {"kind": "free"},
        {"kind": "free", "Kind": "x", "extra": 1},
        {"definition": {}},
        {"kind": 5},
        "free",
        {"kind": "k" * 256},
        {"kind": "nope"},  # a value: not reached
    ]
    response = await client.post(BATCH, json={"items": items}, headers=AUTH)
    details = [(d["loc"], d["msg"], d["type"]) for d in response.json()["detail"]]
    assert details == [
        (["body", "items", 1, "Kind"], "extra field not permitted", "extra_forbidden"),
        (["body", "items", 2, "kind"], "field required", "missing"),
        (["body", "items", 3, "kind"], "must be a string", "string_type"),
        (["body", "items", 4], "must be a create body (an object)", "dict_type"),
        (["body", "items", 5, "kind"], "must be at most 255 characters", "string_too_long"),
    ]
    assert await total(client) == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, [["body", "items"]]),
        ({"items": {"kind": "free"}}, [["body", "items"]]),
        ({"items": "free"}, [["body", "items"]]),
        ({"items": None}, [["body", "items"]]),
        ({"items": [], "more": 1}, [["body", "more"]]),
        ([{"kind": "free"}], [["body"]]),
    ],
)
async def test_a_malformed_body_is_refused(
    client: httpx.AsyncClient, body: Any, expected: list[list[Any]]
) -> None:
    response = await client.post(BATCH, json=body, headers=AUTH)
    assert locs(response) == expected
    assert await total(client) == 0


async def test_at_most_1000_items(client: httpx.AsyncClient) -> None:
    assert MAX_BATCH == CORE_MAX_BATCH == 1000  # the wire's bound is the core's
    items = [{"kind": "free"}] * (MAX_BATCH + 1)
    response = await client.post(BATCH, json={"items": items}, headers=AUTH)
    assert response.json()["detail"] == [
        {"loc": ["body", "items"], "msg": "at most 1000 items", "type": "too_long"}
    ]
    assert await total(client) == 0


async def test_1000_items_of_a_usual_size_fit_the_body_limit(client: httpx.AsyncClient) -> None:
    """The default limit (1 MiB) holds 1,000 creates of several hundred bytes each."""
    items = [
        {
            "kind": "echo",
            "definition": {"seconds": 0, "label": "x" * 600},
            "idempotencyKey": str(uuid.uuid4()),
            "actionId": "nightly-import-2026-01-02",
        }
        for _ in range(MAX_BATCH)
    ]
    raw = json.dumps({"items": items}).encode()
    assert 700_000 < len(raw) < 1 << 20
    response = await client.post(
        BATCH, content=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    assert [a["status"] for a in response.json()["items"]] == [201] * MAX_BATCH
    assert await total(client) == MAX_BATCH


async def test_a_body_over_the_limit_is_413(runkit: Runkit) -> None:
    app = asgi_app(runkit, auth=ApiKeys({"tester": API_KEY}), max_body_bytes=1000)
    async with client_for(app) as c:
        items = [{"kind": "free", "idempotencyKey": str(uuid.uuid4())} for _ in range(20)]
        response = await c.post(BATCH, json={"items": items}, headers=AUTH)
        assert response.status_code == 413, response.text
        assert await total(c) == 0


async def test_the_idempotency_key_header_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        BATCH, json={"items": [{"kind": "free"}]}, headers={**AUTH, "Idempotency-Key": "k"}
    )
    assert locs(response) == [["header", "idempotency-key"]]
    assert await total(client) == 0


async def test_a_bad_execute_query_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        BATCH, params={"execute": "yes"}, json={"items": [{"kind": "free"}]}, headers=AUTH
    )
    assert locs(response) == [["query", "execute"]]
    assert await total(client) == 0


# ------------------------------------------------------------------ who may ---------------
async def test_credentials_come_first(client: httpx.AsyncClient) -> None:
    """An anonymous caller learns nothing, not even that its body was malformed."""
    for body in ({"items": [{"kind": "free"}]}, {"items": "nonsense"}):
        response = await client.post(BATCH, json=body)
        assert response.status_code == 401 and "WWW-Authenticate" in response.headers
    bad = await client.post(BATCH, json={"items": []}, headers={"X-API-Key": "wrong"})
    assert bad.status_code == 401
    assert await total(client) == 0


@pytest.mark.parametrize(
    ("roles", "execute", "status"),
    [
        ({"read"}, False, 403),
        ({"approve"}, False, 403),
        ({"operate"}, True, 200),
        ({"read", "operate"}, False, 200),
        ({"admin"}, True, 200),
    ],
)
async def test_roles_decide(runkit: Runkit, roles: set[str], execute: bool, status: int) -> None:
    keys = ApiKeys({"tester": API_KEY}, roles=roles)
    async with client_for(asgi_app(runkit, auth=keys)) as c:
        params = {"execute": "true"} if execute else {}
        body = {"items": [{"kind": "free"}, {"kind": "free"}]}
        response = await c.post(BATCH, params=params, json=body, headers=AUTH)
        assert response.status_code == status, response.text
        if status == 403:
            assert response.json() == {"detail": "not allowed to create runs"}
    assert (await runkit.list()).total == (2 if status == 200 else 0)


async def test_a_tenant_key_s_batch_belongs_to_its_tenant(runkit: Runkit) -> None:
    other = await runkit.create("free", principal=Principal("k0", kind="api_key", tenant="beta"))
    keys = ApiKeys({"acme-bot": API_KEY}, roles={"operate"}, tenant="acme")
    async with client_for(asgi_app(runkit, auth=keys)) as c:
        items = [{"kind": "free", "idempotencyKey": "same"}, {"kind": "free"}]
        answers = (await c.post(BATCH, json={"items": items}, headers=AUTH)).json()["items"]
        assert [a["status"] for a in answers] == [201, 201]
        for answer in answers:
            run = await runkit.get(answer["actionRun"]["id"])
            assert (run.tenant, run.trigger_source_id) == ("acme", "acme-bot")
        # Another tenant's run is no parent: refused as a missing one, nothing written.
        orphan = {
            "items": [{"kind": "free"}, {"kind": "free", "parentActionRunId": str(other.run.id)}]
        }
        refused = await c.post(BATCH, json=orphan, headers=AUTH)
        assert locs(refused) == [["body", "items", 1, "parentActionRunId"]]
    assert (await runkit.list(tenant="acme")).total == 2


async def test_the_hook_is_asked_once_for_the_batch(runkit: Runkit) -> None:
    asked: list[tuple[str, Run | None]] = []

    def authorize(principal: Principal | None, action: str, run: Run | None) -> bool:
        asked.append((action, run))
        return action != "execute"

    async with client_for(asgi_app(runkit, auth=ApiKeys([API_KEY]), authorize=authorize)) as c:
        body = {"items": [{"kind": "free"}] * 3}
        assert (await c.post(BATCH, json=body, headers=AUTH)).status_code == 200
        assert asked == [("create", None)]
        queued = await c.post(BATCH, params={"execute": "1"}, json=body, headers=AUTH)
        assert queued.status_code == 403, queued.text
        assert "execute" in queued.json()["detail"]
    assert (await runkit.list()).total == 3


# ------------------------------------------------------------------ routing ---------------
async def test_batch_is_no_run_id(client: httpx.AsyncClient) -> None:
    wrong_method = await client.get(BATCH, headers=AUTH)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    as_run = await client.get(BASE + "/:batch", headers=AUTH)
    assert locs(as_run) == [["path", "run_id"]]
    posted = await client.post(BASE + "/:batch", json={"items": []}, headers=AUTH)
    assert posted.status_code == 405
    run_id = (await client.post(BASE, json={"kind": "free"}, headers=AUTH)).json()["id"]
    assert (await client.post(f"{BASE}/{run_id}:batch", headers=AUTH)).status_code == 405
    assert (await client.post(BATCH, json={"items": []}, headers=AUTH)).status_code == 200


async def test_the_document_describes_it(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    paths = list(doc["paths"])
    assert paths.index(BATCH) < paths.index(BASE + "/{run_id}")
    op = doc["paths"][BATCH]["post"]
    assert op["operationId"] == "create_runs"
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateRuns"
    }
    schemas = doc["components"]["schemas"]
    items = schemas["CreateRuns"]["properties"]["items"]
    assert items["maxItems"] == MAX_BATCH and "oneOf" in items["items"]
    assert schemas["CreateRuns"]["additionalProperties"] is False
    assert schemas["CreatedRun"]["properties"]["status"]["enum"] == [201, 200, 422]
    assert schemas["CreatedRun"]["required"] == ["status", "actionRun", "error"]


# ------------------------------------------------------------------ the answer's JSON -----
APPROVALS = (
    {"by": "ada", "decision": "approve", "reason": None, "at": "2026-01-02T03:04:05Z"},
    {"by": "bob", "decision": "reject", "reason": "no", "at": "2026-01-02T03:04:05.250000+00:00"},
)


@given(run=runs(), approvals=st.sampled_from([(), APPROVALS]), shown=json_objects)
def test_a_batch_writes_each_run_as_every_answer_does(
    run: Run, approvals: tuple[dict[str, Any], ...], shown: dict[str, Any]
) -> None:
    """The batch's writer of runs (built from the wire's Run and the converter's hooks)
    writes exactly what ``to_json(wire_run(...))`` does for a create, a get or a list."""
    run = attrs.evolve(run, approvals=approvals)
    expected = to_json(wire_run(run, "Shown", shown))
    written = run_json(run, "Shown", shown)
    assert written == expected
    assert list(written) == list(expected)
    assert json.dumps(written) == json.dumps(expected)


async def test_the_answer_is_the_wire_s_created_runs(client: httpx.AsyncClient) -> None:
    """The whole answer reads back as ``CreatedRuns`` and writes the same again."""
    await client.post(BASE, json={"kind": "free", "idempotencyKey": "a"}, headers=AUTH)
    items = [
        {"kind": "free", "idempotencyKey": "a"},
        {"kind": "free", "definition": {"x": 1}, "idempotencyKey": "a"},
        {"kind": "free"},
    ]
    answer = (await client.post(BATCH, json={"items": items}, headers=AUTH)).json()
    assert to_json(converter.structure(answer, CreatedRuns)) == answer
