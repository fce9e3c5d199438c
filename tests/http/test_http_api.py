"""Every endpoint's success path and every documented error, over ASGI."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from api_support import AUTH, BASE, claim

from runkit import NewLogEntry, Runkit

pytestmark = pytest.mark.anyio


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("kind", "echo")
    body.setdefault("definition", {"seconds": 1})
    r = await client.post(BASE, json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def gate(runkit: Runkit, approvers: list[str] | None = None) -> dict[str, str]:
    """A gate run created by someone else (the API key may not approve its own runs)."""
    created = await runkit.create("gate", {"approvers": approvers or []})
    return {"id": str(created.run.id)}


def loc(r: httpx.Response) -> list[Any]:
    assert r.status_code == 422, r.text
    return [d["loc"] for d in r.json()["detail"]]


async def test_create_get_list_delete(client: httpx.AsyncClient) -> None:
    run = await create(client, idempotencyKey="k1", actionId="a1")
    assert run["status"] == "pending"
    assert run["triggerMethod"] == "api" and run["triggerSourceType"] == "api_key"
    assert run["definition"] == {"seconds": 1}
    r = await client.get(f"{BASE}/{run['id']}", headers=AUTH)
    assert r.status_code == 200 and r.json()["id"] == run["id"]
    r = await client.get(BASE, params={"action_id": "a1", "limit": 1}, headers=AUTH)
    page = r.json()
    assert r.status_code == 200
    assert set(page) == {"hasNext", "limit", "offset", "runs", "total", "users"}
    assert [x["id"] for x in page["runs"]] == [run["id"]] and page["total"] == 1
    r = await client.delete(f"{BASE}/{run['id']}", headers=AUTH)
    assert r.status_code == 204 and r.content == b""
    r = await client.get(f"{BASE}/{run['id']}", headers=AUTH)
    assert r.status_code == 404 and "not found" in r.json()["detail"]


async def test_idempotent_replay(client: httpx.AsyncClient) -> None:
    first = await create(client, idempotencyKey="same")
    r = await client.post(
        BASE,
        json={"kind": "echo", "definition": {"seconds": 1}, "idempotencyKey": "same"},
        headers=AUTH,
    )
    assert r.status_code == 200 and r.headers["Idempotent-Replayed"] == "true"
    assert r.json()["id"] == first["id"]
    r = await client.post(
        BASE,
        json={"kind": "echo", "definition": {"seconds": 2}, "idempotencyKey": "same"},
        headers=AUTH,
    )
    assert loc(r) == [["body", "idempotencyKey"]]


async def test_actions_and_conflicts(client: httpx.AsyncClient, runkit: Runkit) -> None:
    run = await create(client)
    url = f"{BASE}/{run['id']}"
    r = await client.post(url + "/resume", headers=AUTH)
    assert r.status_code == 409
    assert "pending" in r.json()["detail"] and "resume" in r.json()["detail"]
    for action, status in [("execute", "queued"), ("pause", "paused"), ("resume", "queued")]:
        r = await client.post(f"{url}/{action}", headers=AUTH)
        assert r.status_code == 200 and r.json()["status"] == status, r.text
    r = await client.post(url + "/cancel", headers=AUTH)
    assert r.json()["status"] == "cancelled"
    r = await client.post(url + "/retry", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    assert r.json()["retryCount"] == 1
    r = await client.delete(url, headers=AUTH)
    assert r.status_code == 409


async def test_approve_and_reject(client: httpx.AsyncClient, runkit: Runkit) -> None:
    for decision, status in [("approve", "succeeded"), ("reject", "rejected")]:
        run = await gate(runkit)
        await runkit.park(await claim(runkit, run["id"]), timeout=None)
        r = await client.post(
            f"{BASE}/{run['id']}/{decision}", json={"reason": "looks fine"}, headers=AUTH
        )
        assert r.status_code == 200 and r.json()["status"] == status, r.text
    run = await create(client, kind="gate", definition={})
    r = await client.post(f"{BASE}/{run['id']}/approve", headers=AUTH)  # no body is fine
    assert r.status_code == 409  # not awaiting approval
    # Only named approvers may decide: 403 from the core's policy.
    run = await gate(runkit, ["alice"])
    await runkit.park(await claim(runkit, run["id"]), timeout=None)
    r = await client.post(f"{BASE}/{run['id']}/approve", headers=AUTH)
    assert r.status_code == 403
    r = await client.post(f"{BASE}/{run['id']}/reject", json={"why": 1}, headers=AUTH)
    assert loc(r) == [["body", "why"]]


async def test_logs_pages(client: httpx.AsyncClient, runkit: Runkit) -> None:
    run = await create(client)
    lease = await claim(runkit, run["id"])
    await runkit.append_logs(lease, [NewLogEntry(f"line {i}") for i in range(5)])
    url = f"{BASE}/{run['id']}/logs"
    r = await client.get(url, params={"limit": 2}, headers=AUTH)
    page = r.json()
    assert r.status_code == 200 and page["hasMore"] is True and len(page["entries"]) == 2
    assert set(page["entries"][0]) == {
        "id",
        "attempt",
        "level",
        "event",
        "message",
        "data",
        "occurredAt",
        "workerId",
    }
    seen = [e["id"] for e in page["entries"]]
    while page["hasMore"]:
        page = (await client.get(url, params={"after": page["nextCursor"]}, headers=AUTH)).json()
        seen += [e["id"] for e in page["entries"]]
    assert len(seen) == len(set(seen)) == 8  # created, queued, running + 5 lines
    assert (await client.get(url, params={"after": "zz"}, headers=AUTH)).status_code == 422
    other = await create(client)
    r = await client.get(url, params={"after": f"{other['id'][:8]}-1"}, headers=AUTH)
    assert loc(r) == [["query", "after"]]


@pytest.mark.parametrize(
    ("method", "path", "params", "expected"),
    [
        ("GET", "", {"limit": "0"}, [["query", "limit"]]),
        ("GET", "", {"limit": "101"}, [["query", "limit"]]),
        ("GET", "", {"limit": "ten"}, [["query", "limit"]]),
        ("GET", "", {"offset": "-1"}, [["query", "offset"]]),
        ("GET", "", {"status": "nope"}, [["query", "status"]]),
        ("GET", "", {"parent_action_run_id": "x"}, [["query", "parent_action_run_id"]]),
        ("GET", "/not-a-uuid", {}, [["path", "run_id"]]),
        ("POST", "/not-a-uuid/cancel", {}, [["path", "run_id"]]),
        ("DELETE", "/not-a-uuid", {}, [["path", "run_id"]]),
        ("GET", f"/{uuid.UUID(int=1)}/logs", {"limit": "501"}, [["query", "limit"]]),
        ("GET", f"/{uuid.UUID(int=1)}/logs", {"after": "bad"}, [["query", "after"]]),
    ],
)
async def test_query_and_path_validation(
    client: httpx.AsyncClient, method: str, path: str, params: dict[str, str], expected: Any
) -> None:
    r = await client.request(method, BASE + path, params=params, headers=AUTH)
    assert loc(r) == expected
    assert all({"loc", "msg", "type"} == set(d) for d in r.json()["detail"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "nope"}, [["body", "kind"]]),
        ({}, [["body", "kind"]]),
        ({"kind": 5}, [["body", "kind"]]),
        ({"kind": "echo", "definition": {"seconds": "x"}}, [["body", "definition", "seconds"]]),
        ({"kind": "echo", "definition": {}}, [["body", "definition", "seconds"]]),
        ({"kind": "echo", "definition": {"seconds": 1, "x": 1}}, [["body", "definition", "x"]]),
        ({"kind": "echo", "definition": []}, [["body", "definition"]]),
        ({"kind": "free", "extra": 1}, [["body", "extra"]]),
        ({"kind": "free", "idempotencyKey": ""}, [["body", "idempotencyKey"]]),
        ({"kind": "free", "parentActionRunId": "x"}, [["body", "parentActionRunId"]]),
        ({"kind": "free", "definition": {"a": "nul\x00"}}, [["body", "definition", "a"]]),
    ],
)
async def test_body_validation(
    client: httpx.AsyncClient, body: dict[str, Any], expected: Any
) -> None:
    assert loc(await client.post(BASE, json=body, headers=AUTH)) == expected


@pytest.mark.parametrize(
    ("content", "ctype", "status", "expected"),
    [
        (b"{bad json", "application/json", 422, [["body"]]),
        (b"[1, 2]", "application/json", 422, [["body"]]),
        (b'"text"', "application/json", 422, [["body"]]),
        (b"\xff\xfe{}", "application/json", 422, [["body"]]),
        (b"[" * 10_000 + b"]" * 10_000, "application/json", 422, [["body"]]),
        (b"", "application/json", 422, [["body"]]),
        (b'{"kind": "free"}', "text/plain", 415, None),
        (b'{"kind": "free"}', None, 415, None),
        (b'{"kind": "free"}', "application/vnd.api+json", 201, None),
    ],
)
async def test_raw_bodies(
    client: httpx.AsyncClient, content: bytes, ctype: str | None, status: int, expected: Any
) -> None:
    headers = dict(AUTH)
    if ctype:
        headers["Content-Type"] = ctype
    r = await client.post(BASE, content=content, headers=headers)
    assert r.status_code == status, r.text
    if expected is not None:
        assert loc(r) == expected


async def test_deep_json_is_422(client: httpx.AsyncClient) -> None:
    body = b'{"kind": "free", "definition": ' + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}"
    r = await client.post(BASE, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_too_deep"


async def test_body_limit_counts_while_reading(runkit: Runkit) -> None:
    from runkit_contrib import ApiKeys, asgi_app

    app = asgi_app(runkit, auth=ApiKeys({"t": "k"}), max_body_bytes=100)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        headers = {"X-API-Key": "k", "Content-Type": "application/json"}

        async def chunks() -> Any:  # no Content-Length: chunked upload
            for _ in range(20):
                yield b" " * 10

        r = await c.post(BASE, content=chunks(), headers=headers)
        assert r.status_code == 413 and "detail" in r.json()
        r = await c.post(BASE, content=b" " * 101, headers=headers)
        assert r.status_code == 413
        body = b'{"kind": "free"}' + b" " * 84  # exactly 100 bytes
        assert (await c.post(BASE, content=body, headers=headers)).status_code == 201


async def test_unknown_path_and_method_are_json(client: httpx.AsyncClient) -> None:
    r = await client.put(BASE, headers=AUTH)
    assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}
    assert "GET" in r.headers["allow"]
    r = await client.get("/nowhere", headers=AUTH)
    assert r.status_code == 404 and "detail" in r.json()


async def test_unexpected_error_is_generic_500(
    runkit: Runkit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from runkit_contrib import asgi_app

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(runkit, "list", boom)
    app = asgi_app(runkit, allow_anonymous=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get(BASE)
    assert r.status_code == 500 and r.json() == {"detail": "internal server error"}
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert "secret internals" in caplog.text  # logged server side


async def test_storage_unavailable_is_503(runkit: Runkit, monkeypatch: pytest.MonkeyPatch) -> None:
    from runkit import StorageUnavailable
    from runkit_contrib import asgi_app

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailable("postgresql://user:pw@db/x refused")

    monkeypatch.setattr(runkit, "get", down)
    app = asgi_app(runkit, allow_anonymous=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get(f"{BASE}/{uuid.uuid4()}")
    assert r.status_code == 503 and "pw" not in r.text and r.headers["Retry-After"]


async def test_mounted_under_prefix(runkit: Runkit) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from runkit_contrib import asgi_app

    host = Starlette(routes=[Mount("/runkit", app=asgi_app(runkit, allow_anonymous=True))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://t") as c:
        r = await c.post("/runkit" + BASE, json={"kind": "free"})
        assert r.status_code == 201
        assert r.headers["Location"] == f"/runkit{BASE}/{r.json()['id']}"
        doc = (await c.get("/runkit/openapi.json")).json()
        assert doc["servers"] == [{"url": "/runkit"}]
        assert (await c.get("/runkit/docs")).status_code == 200
