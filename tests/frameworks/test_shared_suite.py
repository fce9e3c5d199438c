"""The one HTTP suite every framework integration passes (see clients.py): the runkit app
mounted under ``/runkit`` of a FastAPI, Starlette, Litestar, Django and Quart host must
answer exactly as it does alone, with its URLs (Location, OpenAPI ``servers``, the docs
page's links) carrying the prefix, and runkit opened by the host's own lifespan. Every test
runs on each host, over memory and over SQLite (conftest.py).

This half: mounting, lifespans and each endpoint's success path; test_shared_errors.py
holds the refusals (422, 401, 403, 404, 405, 409, 413, 415, 500, 503)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from runkit import NewLogEntry, Runkit, WorkerInfo

from .clients import HELLO, FrameworkClient
from .conftest import TrackingStore
from .support import (
    API_KEY,
    AUTH,
    COOKIE,
    RFC3339_UTC,
    awaiting_approval,
    claimed,
    create,
    detail_locs,
    post,
)

pytestmark = pytest.mark.anyio


# ------------------------------------------------------------------ mounting, lifespan ----
async def test_host_lifespan_opens_and_closes_runkit(
    framework: type[FrameworkClient], runkit: Runkit, runkit_app: Starlette, store: TrackingStore
) -> None:
    client = framework(runkit, runkit_app)
    assert (store.opened, store.closed) == (0, 0)
    async with client.running():
        assert (store.opened, store.closed) == (1, 0)
    assert (store.opened, store.closed) == (1, 1)


async def test_host_can_serve_twice(
    framework: type[FrameworkClient], runkit: Runkit, runkit_app: Starlette, store: TrackingStore
) -> None:
    """Started, stopped, started again (a test client per test, a reloader): the runkit
    hooks must not be one-shot (Quart's ``while_serving`` generators are)."""
    client = framework(runkit, runkit_app)
    for _ in range(2):
        async with client.running() as host:
            assert (await host.http.get(host.api(), headers=AUTH)).status_code == 200
    assert (store.opened, store.closed) == (2, 2)


async def test_embedded_worker_runs_in_host_lifespan(
    framework: type[FrameworkClient], runkit: Runkit, runkit_app: Starlette
) -> None:
    async with framework(runkit, runkit_app, workers=1).running() as host:
        run = await create(host, {"kind": "t_noop"})
        assert (await post(host, run["id"], "execute")).status_code == 200
        with anyio.fail_after(10):
            while True:
                got = await host.http.get(host.api(f"/{run['id']}"), headers=AUTH)
                if got.json()["status"] == "succeeded":
                    break
                await anyio.sleep(0.02)


async def test_host_keeps_its_own_routes(host: FrameworkClient) -> None:
    response = await host.http.get("/hello")
    assert response.status_code == 200
    assert response.text == HELLO


async def test_openapi_and_docs_under_prefix(host: FrameworkClient) -> None:
    spec = await host.http.get(f"{host.prefix}/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["servers"] == [{"url": host.prefix}]
    assert "/api/v1/action-runs" in spec.json()["paths"]

    docs = await host.http.get(f"{host.prefix}/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    links = re.findall(r"href='([^']+)'", docs.text)
    assert links
    for link in links:  # every link of the page resolves below the mount
        target = urljoin(str(docs.url), link)
        assert httpx.URL(target).path.startswith(host.prefix + "/"), target
        assert (await host.http.get(target)).status_code == 200, target


async def test_openapi_describes_new_operations(host: FrameworkClient) -> None:
    doc = (await host.http.get(f"{host.prefix}/openapi.json")).json()
    paths = doc["paths"]
    assert paths["/api/v1/kinds"]["get"]["responses"]["200"]["content"]["application/json"] == {
        "schema": {"$ref": "#/components/schemas/KindList"}
    }
    assert "/api/v1/workers" in paths
    create_params = {p["name"]: p for p in paths["/api/v1/action-runs"]["post"]["parameters"]}
    assert create_params["execute"]["schema"]["type"] == "boolean"
    stream = paths["/api/v1/action-runs/{run_id}/logs/stream"]["get"]["responses"]["200"]
    events = stream["content"]["text/event-stream"]["itemSchema"]
    assert events == {"$ref": "#/components/schemas/LogStreamEvent"}
    schemas = doc["components"]["schemas"]
    log_data = schemas["LogEvent"]["properties"]["data"]
    assert log_data["contentSchema"] == {"$ref": "#/components/schemas/LogEntry"}
    assert schemas["EndEvent"]["properties"]["event"] == {"const": "end"}
    assert "approvals" in schemas["Run"]["required"]
    assert schemas["Conflict"]["required"] == ["detail", "status", "allowed"]
    definition = schemas["CreateRun.t_echo"]["properties"]["definition"]
    assert definition["examples"] == [{"seconds": 2}]


async def test_root_redirects_to_the_dashboard(host: FrameworkClient) -> None:
    response = await host.http.get(f"{host.prefix}/")
    assert response.status_code == 307
    assert response.headers["location"] == f"{host.prefix}/ui/"
    for start in (host.prefix, f"{host.prefix}/"):  # every host adds the slash first
        page = await host.http.get(start, follow_redirects=True)
        assert page.status_code == 200, start
        # Not signed in: the sign-in page, under the mount, sent back to the dashboard after.
        assert page.url.path == f"{host.prefix}/ui/sign-in"
        assert page.url.params["next"] == f"{host.prefix}/ui/"
        assert page.headers["content-type"].startswith("text/html")


async def test_root_redirect_behind_proxy(
    framework: type[FrameworkClient], runkit: Runkit, runkit_app: Starlette
) -> None:
    async with framework(runkit, runkit_app).running(root_path="/outer") as host:
        response = await host.http.get(f"/outer{host.prefix}/")
        assert response.status_code == 307
        assert response.headers["location"] == f"/outer{host.prefix}/ui/"
        page = await host.http.get(f"/outer{host.prefix}", follow_redirects=True)
        assert page.url.path == f"/outer{host.prefix}/ui/sign-in"


async def test_the_dashboard_signs_in_and_links_under_the_mount(host: FrameworkClient) -> None:
    """A session made under the mount rides on the API and the pages, whose every link and
    asset carries the prefix."""
    signed_in = await host.http.post(f"{host.prefix}/api/v1/sessions", json={"apiKey": API_KEY})
    assert signed_in.status_code == 200, signed_in.text
    assert f"Path={host.prefix}/" in signed_in.headers["set-cookie"]
    token = signed_in.cookies["vai_token"]
    cookie = {"Cookie": f"vai_token={token}"}
    created = await host.http.post(
        host.api(), json={"kind": "t_noop"}, headers={**cookie, "X-Runkit-CSRF": "1"}
    )
    assert created.status_code == 201 and created.json()["triggerMethod"] == "ui"
    page = await host.http.get(f"{host.prefix}/ui/", headers=cookie)
    assert page.status_code == 200
    links = [
        link
        for link in re.findall(r'(?:href|src|hx-get)="([^"#]+)"', page.text)
        if not link.startswith("data:")  # the empty favicon
    ]
    assert links and all(link.startswith(f"{host.prefix}/") for link in links), links
    assert created.json()["id"] in page.text
    for asset in {link for link in links if "/ui/static/" in link}:
        assert (await host.http.get(asset)).status_code == 200, asset
    run_page = await host.http.get(f"{host.prefix}/ui/runs/{created.json()['id']}", headers=cookie)
    assert run_page.status_code == 200


async def test_no_docs_no_ui_no_root(
    framework: type[FrameworkClient], runkit: Runkit, docless_app: Starlette
) -> None:
    async with framework(runkit, docless_app).running() as host:
        for path in ("/", "/docs", "/openapi.json", "/ui/", "/ui/sign-in"):
            response = await host.http.get(f"{host.prefix}{path}", headers=AUTH)
            assert response.status_code == 404, path
        assert (await host.http.get(host.api(), headers=AUTH)).status_code == 200


async def test_trailing_slash_redirect_keeps_prefix(host: FrameworkClient) -> None:
    """Litestar appends a slash to every mounted path; the glue must undo only that one."""
    response = await host.http.get(host.api("/"), headers=AUTH)
    assert response.status_code == 307
    assert httpx.URL(response.headers["location"]).path == host.api()
    assert (await host.http.get(host.api(), headers=AUTH)).status_code == 200


async def test_root_path_behind_proxy(
    framework: type[FrameworkClient], runkit: Runkit, runkit_app: Starlette
) -> None:
    """Served under ``/outer`` by a proxy (``uvicorn --root-path /outer``): both prefixes
    end up in the URLs runkit builds."""
    async with framework(runkit, runkit_app).running(root_path="/outer") as host:
        spec = await host.http.get(f"/outer{host.prefix}/openapi.json")
        assert spec.status_code == 200, spec.text
        assert spec.json()["servers"] == [{"url": f"/outer{host.prefix}"}]
        created = await host.http.post(f"/outer{host.api()}", json={"kind": "t_noop"}, headers=AUTH)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == f"/outer{host.api()}/{created.json()['id']}"


# ------------------------------------------------------------------ each endpoint ---------
async def test_create_and_replay(host: FrameworkClient) -> None:
    body = {"kind": "t_echo", "definition": {"seconds": 1}, "idempotencyKey": "order-1"}
    first = await host.http.post(host.api(), json=body, headers=AUTH)
    assert first.status_code == 201, first.text
    run = first.json()
    assert run["kind"] == "t_echo"
    assert run["status"] == "pending"
    assert run["definition"] == {"seconds": 1}
    assert (run["triggerMethod"], run["triggerSourceType"]) == ("api", "api_key")
    assert first.headers["location"] == host.api(f"/{run['id']}")
    assert "idempotent-replayed" not in first.headers

    again = await host.http.post(host.api(), json=body, headers=AUTH)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == run["id"]

    # The same key with another request: refused at the key, not replayed.
    other = {**body, "definition": {"seconds": 2}}
    conflict = await host.http.post(host.api(), json=other, headers=AUTH)
    assert conflict.status_code == 422, conflict.text
    (problem,) = conflict.json()["detail"]
    assert (problem["loc"], problem["type"]) == (["body", "idempotencyKey"], "idempotency_conflict")


async def test_run_json(host: FrameworkClient) -> None:
    """Every field of a run, camelCase, and nothing of the engine's bookkeeping."""
    run = await create(host, {"kind": "t_noop", "actionId": "a1", "concurrencyKey": "c"})
    assert list(run) == [
        "id", "kind", "status", "createdAt", "updatedAt", "definition", "actionId",
        "idempotencyKey", "concurrencyKey", "parentActionRunId", "progress", "result", "error",
        "retryCount", "interruptCount", "triggerMethod", "triggerSourceType", "triggerSourceId",
        "startedAt", "completedAt", "statusReason", "attempt", "approvals", "displayStatus",
        "durationSeconds",
    ]  # fmt: skip
    assert (run["actionId"], run["concurrencyKey"], run["definition"]) == ("a1", "c", {})
    assert (run["retryCount"], run["attempt"], run["startedAt"]) == (0, 0, None)
    assert RFC3339_UTC.fullmatch(run["createdAt"]), run
    assert run["displayStatus"].startswith("Pending")
    child = await create(host, {"kind": "t_noop", "parentActionRunId": run["id"]})
    assert child["parentActionRunId"] == run["id"]


@pytest.mark.parametrize(
    ("value", "status"),
    [("true", "queued"), ("1", "queued"), ("false", "pending"), ("0", "pending")],
)
async def test_create_with_execute_query(host: FrameworkClient, value: str, status: str) -> None:
    response = await host.http.post(
        host.api(), params={"execute": value}, json={"kind": "t_noop"}, headers=AUTH
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == status
    got = await host.http.get(response.headers["location"], headers=AUTH)
    assert got.json()["status"] == status


@pytest.mark.parametrize("value", ["yes", "TRUE", "", "2", "true "])
async def test_create_execute_query_422(host: FrameworkClient, value: str) -> None:
    response = await host.http.post(
        host.api(), params={"execute": value}, json={"kind": "t_noop"}, headers=AUTH
    )
    assert detail_locs(response) == [["query", "execute"]]
    assert (await host.http.get(host.api(), headers=AUTH)).json()["total"] == 0


async def test_list_kinds(host: FrameworkClient) -> None:
    response = await host.http.get(host.v1("/kinds"), headers=AUTH)
    assert response.status_code == 200, response.text
    kinds = {k["name"]: k for k in response.json()["kinds"]}
    assert [k["name"] for k in response.json()["kinds"]] == sorted(kinds)
    assert {"t_noop", "t_echo", "t_gate", "approval_gate"} <= set(kinds)
    assert kinds["t_echo"] == {
        "name": "t_echo",
        "displayName": "Echo",
        "description": "Waits `seconds`.",
        "capabilities": {
            "pausable": True,
            "cancellable": True,
            "retry": {"maxAttempts": 3, "backoffBase": 0.5, "backoffMax": 10.0, "jitter": 0.1},
        },
        "definitionSchema": {
            "type": "object",
            "properties": {"seconds": {"type": "integer", "minimum": 0}},
            "additionalProperties": False,
            "required": ["seconds"],
        },
        "example": {"seconds": 2},
    }
    noop = kinds["t_noop"]
    assert noop["displayName"] == "t_noop"  # no display name: the name
    assert noop["definitionSchema"] == {"type": "object"}  # no config: any object
    assert noop["example"] is None
    assert noop["capabilities"]["retry"]["maxAttempts"] == 1
    gate = kinds["approval_gate"]["definitionSchema"]
    assert gate["properties"]["requiredApprovals"] == {
        "type": "integer",
        "minimum": 1,
        "default": 1,
    }


async def test_list_workers(host: FrameworkClient, monkeypatch: pytest.MonkeyPatch) -> None:
    started = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    seen = datetime(2025, 1, 2, 3, 5, 0, 250000, tzinfo=UTC)
    worker = WorkerInfo("w-1", "build-7", 4242, ("t_noop", "t_echo"), 8, started, seen)

    async def workers() -> list[WorkerInfo]:
        return [worker]

    monkeypatch.setattr(host.runkit, "workers", workers)
    response = await host.http.get(host.v1("/workers"), headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "workers": [
            {
                "id": "w-1",
                "host": "build-7",
                "pid": 4242,
                "kinds": ["t_noop", "t_echo"],
                "concurrency": 8,
                "startedAt": "2025-01-02T03:04:05Z",
                "lastSeenAt": "2025-01-02T03:05:00.250000Z",
            }
        ]
    }


async def test_embedded_worker_is_listed(
    framework: type[FrameworkClient], runkit: Runkit, runkit_app: Starlette
) -> None:
    async with framework(runkit, runkit_app).running() as host:
        assert (await host.http.get(host.v1("/workers"), headers=AUTH)).json() == {"workers": []}
    async with framework(runkit, runkit_app, workers=2).running() as host:
        with anyio.fail_after(10):
            while True:
                listed = (await host.http.get(host.v1("/workers"), headers=AUTH)).json()
                if listed["workers"]:
                    break
                await anyio.sleep(0.02)
        (worker,) = listed["workers"]
        assert worker["concurrency"] == 2
        assert set(worker["kinds"]) >= {"t_noop", "t_echo", "t_gate"}
        assert RFC3339_UTC.fullmatch(worker["startedAt"]), worker
        assert RFC3339_UTC.fullmatch(worker["lastSeenAt"]), worker
        assert isinstance(worker["pid"], int) and worker["host"] and worker["id"]


@pytest.mark.parametrize("path", ["/kinds", "/workers"])
async def test_listings_need_credentials(host: FrameworkClient, path: str) -> None:
    response = await host.http.get(host.v1(path))
    assert response.status_code == 401
    assert (await host.http.get(host.v1(path), headers=COOKIE)).status_code == 200


async def test_get_and_list_with_filters(host: FrameworkClient) -> None:
    a = await create(host, {"kind": "t_noop", "actionId": "a1"})
    await create(host, {"kind": "t_noop"})
    await create(host, {"kind": "t_echo", "definition": {"seconds": 0}})

    got = await host.http.get(host.api(f"/{a['id']}"), headers=AUTH)
    assert got.status_code == 200
    assert got.json()["id"] == a["id"]

    everything = (await host.http.get(host.api(), headers=AUTH)).json()
    assert list(everything) == ["hasNext", "limit", "offset", "runs", "total", "users"]
    assert everything["total"] == 3
    assert everything["users"] == {}  # created with an API key: no person to describe
    assert (everything["limit"], everything["offset"], everything["hasNext"]) == (100, 0, False)

    noop = (await host.http.get(host.api(), params={"kind": "t_noop"}, headers=AUTH)).json()
    assert noop["total"] == 2
    assert {r["kind"] for r in noop["runs"]} == {"t_noop"}

    params = {"kind": "t_noop", "status": "pending", "limit": 1, "offset": 0}
    page = (await host.http.get(host.api(), params=params, headers=AUTH)).json()
    assert (len(page["runs"]), page["hasNext"]) == (1, True)
    params["offset"] = 1
    page = (await host.http.get(host.api(), params=params, headers=AUTH)).json()
    assert (len(page["runs"]), page["hasNext"]) == (1, False)

    none = await host.http.get(host.api(), params={"status": "running"}, headers=AUTH)
    assert none.json()["runs"] == []

    by_action = await host.http.get(host.api(), params={"action_id": "a1"}, headers=AUTH)
    assert [r["id"] for r in by_action.json()["runs"]] == [a["id"]]


async def test_a_parents_children_list_in_creation_order(host: FrameworkClient) -> None:
    parent = await create(host, {"kind": "t_noop"})
    kids = [
        await create(host, {"kind": "t_noop", "parentActionRunId": parent["id"]}) for _ in range(3)
    ]
    await create(host, {"kind": "t_noop"})
    params = {"parent_action_run_id": parent["id"]}
    page = (await host.http.get(host.api(), params=params, headers=AUTH)).json()
    assert [r["id"] for r in page["runs"]] == [k["id"] for k in kids]
    assert all(r["parentActionRunId"] == parent["id"] for r in page["runs"])
    everything = (await host.http.get(host.api(), headers=AUTH)).json()
    assert everything["runs"][0]["id"] != kids[0]["id"]  # other lists: newest first


async def test_execute_pause_resume_cancel_retry(host: FrameworkClient) -> None:
    run_id = (await create(host, {"kind": "t_noop"}))["id"]
    for action, status in [
        ("execute", "queued"),
        ("pause", "paused"),
        ("resume", "queued"),
        ("cancel", "cancelled"),
        ("retry", "queued"),
    ]:
        response = await post(host, run_id, action)
        assert response.status_code == 200, (action, response.text)
        assert response.json()["status"] == status, action
    assert response.json()["retryCount"] == 1
    refused = await host.http.delete(host.api(f"/{run_id}"), headers=AUTH)  # queued: cancel first
    assert refused.status_code == 409, refused.text


async def test_delete(host: FrameworkClient) -> None:
    run_id = (await create(host, {"kind": "t_noop"}))["id"]
    deleted = await host.http.delete(host.api(f"/{run_id}"), headers=AUTH)
    assert deleted.status_code == 204
    assert deleted.content == b""
    gone = await host.http.get(host.api(f"/{run_id}"), headers=AUTH)
    assert gone.status_code == 404 and "not found" in gone.json()["detail"]


async def test_approve(host: FrameworkClient, runkit: Runkit) -> None:
    run = await awaiting_approval(runkit)
    response = await post(host, str(run.id), "approve")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    (approval,) = response.json()["approvals"]
    assert approval["by"] == "tester" and approval["decision"] == "approve"
    assert approval["reason"] is None


async def test_reject_with_reason(host: FrameworkClient, runkit: Runkit) -> None:
    run = await awaiting_approval(runkit)
    response = await post(host, str(run.id), "reject", json={"reason": "not today"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    got = (await host.http.get(host.api(f"/{run.id}"), headers=AUTH)).json()
    (approval,) = got["approvals"]
    assert set(approval) == {"by", "decision", "reason", "at"}
    assert (approval["by"], approval["decision"]) == ("tester", "reject")
    assert approval["reason"] == "not today"
    assert RFC3339_UTC.fullmatch(approval["at"]), approval
    listed = (await host.http.get(host.api(), headers=AUTH)).json()["runs"]
    assert [r["approvals"] for r in listed] == [got["approvals"]]


async def test_new_run_has_no_approvals(host: FrameworkClient) -> None:
    assert (await create(host, {"kind": "t_noop"}))["approvals"] == []


async def test_approver_not_listed_is_refused(host: FrameworkClient, runkit: Runkit) -> None:
    run = await awaiting_approval(runkit, approvers=["someone-else"])
    assert (await post(host, str(run.id), "approve")).status_code == 403


async def test_approve_when_not_awaiting_approval_409(host: FrameworkClient) -> None:
    run = await create(host, {"kind": "t_gate", "definition": {}})
    response = await post(host, run["id"], "approve")
    assert response.status_code == 409, response.text
    assert response.json()["status"] == "pending"


async def test_logs_page_with_cursor(host: FrameworkClient, runkit: Runkit) -> None:
    run = await awaiting_approval(runkit)
    assert (await post(host, str(run.id), "approve")).status_code == 200
    logs = host.api(f"/{run.id}/logs")
    whole = (await host.http.get(logs, headers=AUTH)).json()
    assert len(whole["entries"]) >= 2, whole
    assert whole["hasMore"] is False

    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = await host.http.get(logs, params=params, headers=AUTH)
        assert page.status_code == 200, page.text
        data = page.json()
        seen += data["entries"]
        if not data["hasMore"]:
            break
        params["after"] = data["nextCursor"]
    assert [e["id"] for e in seen] == [e["id"] for e in whole["entries"]]


async def test_logs_pages_of_a_worker_s_lines(host: FrameworkClient, runkit: Runkit) -> None:
    run = await create(host, {"kind": "t_noop"})
    lease = await claimed(runkit, run["id"])
    await runkit.ops.append_logs(lease, [NewLogEntry(f"line {i}") for i in range(5)])
    url = host.api(f"/{run['id']}/logs")
    page = (await host.http.get(url, params={"limit": 2}, headers=AUTH)).json()
    assert page["hasMore"] is True and len(page["entries"]) == 2
    first = page["entries"][0]
    assert list(first) == [
        "id", "attempt", "level", "event", "message", "data", "occurredAt", "workerId"
    ]  # fmt: skip
    assert first["id"] == f"{run['id'][:8]}-1" and RFC3339_UTC.fullmatch(first["occurredAt"])
    seen = [e for e in page["entries"]]
    while page["hasMore"]:
        params = {"after": page["nextCursor"]}
        page = (await host.http.get(url, params=params, headers=AUTH)).json()
        seen += page["entries"]
    assert len({e["id"] for e in seen}) == len(seen) == 8  # created, queued, running + 5
    assert [e["message"] for e in seen[-5:]] == [f"line {i}" for i in range(5)]
    assert {e["attempt"] for e in seen[-5:]} == {1}
    assert page["nextCursor"] == seen[-1]["id"]  # the end: the last cursor, again
